/* Delivery of queued messages: local recipients land in their Maildir,
 * remote ones stay pending, aliases expand, a message leaves the queue when
 * every recipient is done, and a temporary failure is retried later. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "mail/config.h"
#include "daemon/control.h"
#include "deliver/delivery.h"
#include "mail/event.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"
#include "queue/qindex.h"
#include "queue/queue.h"
#include "test_tmp.h"
#include "daemon/modules.h"

#define T0 1700000000LL /* fake "now", seconds */

static const char wire[] = "Received: from client\r\n\tby gw\r\nSubject: test\r\n\r\nhello\r\n";

struct fixture {
	char dir[TEST_TMP_MAX];
	struct config cfg;
	struct queue *q;
	struct delivery *d;
	struct event_base *base;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct buf err = BUF_INIT;
	char *path;

	assert_non_null(test_tmp_dir(f->dir, sizeof(f->dir), "dialmail-delivery"));
	path = xasprintf("%s/dialmail.conf", f->dir);
	{
		const char conf[] = "local_domains = example.org, example.net\n"
				    "local_recipients = alice, bob\n"
				    "[aliases]\n"
				    "sales = alice, Bob@Example.NET\n"
				    "world = alice, ext@remote.example\n"
				    "loop1 = loop2\n"
				    "loop2 = loop1\n";
		assert_int_equal(fs_write_atomic(path, conf, sizeof(conf) - 1, 0600), 0);
	}
	if (config_load(&f->cfg, path, &err) < 0)
		fail_msg("config: %s", buf_cstr(&err));
	free(path);
	buf_free(&err);
	clock_set_fake(T0 * 1000000);
	assert_int_equal(event_open(f->dir, NULL, 0), 0);
	f->q = queue_open(f->dir);
	assert_non_null(f->q);
	f->base = event_base_new();
	f->d = delivery_new(f->base, &f->cfg, f->q, f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	delivery_free(f->d);
	event_base_free(f->base);
	queue_close(f->q);
	event_close();
	config_free(&f->cfg);
	clock_set_fake(0);
	assert_int_equal(test_tmp_rm(f->dir), 0);
	free(f);
	return 0;
}

/* Queues wire for the NULL-terminated recipients; returns the id. */
static char *enqueue(struct fixture *f, const char *sender, ...)
{
	struct iovec iov = {(void *)wire, sizeof(wire) - 1};
	struct q_env env;
	const char *rcpt;
	va_list ap;
	char *id;

	memset(&env, 0, sizeof(env));
	env.created = clock_now();
	env.sender = xstrdup(sender);
	env.client = xstrdup("127.0.0.1");
	env.size = iov.iov_len;
	va_start(ap, sender);
	while ((rcpt = va_arg(ap, const char *)) != NULL)
		q_env_add_rcpt(&env, rcpt);
	va_end(ap);
	assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_OK);
	id = xstrdup(env.id);
	q_env_free(&env);
	return id;
}

static size_t count_files(const char *dir, const char *user, const char *sub)
{
	char *path = xasprintf("%s/mail/%s/Maildir/%s", dir, user, sub);
	DIR *d = opendir(path);
	struct dirent *e;
	size_t n = 0;

	free(path);
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The content of the one message in user's new/. */
static char *mailbox_message(const char *dir, const char *user)
{
	char *path = xasprintf("%s/mail/%s/Maildir/new", dir, user);
	DIR *d = opendir(path);
	struct dirent *e;
	struct buf b = BUF_INIT;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *file = xasprintf("%s/%s", path, e->d_name);
		assert_int_equal(fs_read_file(file, &b), 0);
		free(file);
	}
	closedir(d);
	free(path);
	return buf_steal(&b);
}

static int queued(struct fixture *f, const char *id)
{
	char *path = xasprintf("%s/queue/%s", f->dir, id);
	int rc = access(path, F_OK) == 0;

	free(path);
	return rc;
}

static const struct q_rcpt *find_rcpt(const struct q_env *env, const char *addr)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (strcmp(env->rcpt[i].addr, addr) == 0)
			return &env->rcpt[i];
	fail_msg("recipient %s not in the envelope", addr);
	return NULL;
}

/* Number of events with this id (and, if rcpt is given, this rcpt field). */
static int count_events(struct fixture *f, int id, const char *rcpt)
{
	char *path = xasprintf("%s/log/events.jsonl", f->dir);
	FILE *fp = fopen(path, "r");
	char line[4096];
	int n = 0;

	free(path);
	if (fp == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp)) {
		json_t *o = json_loads(line, 0, NULL);
		const char *r;

		assert_non_null(o);
		r = json_string_value(json_object_get(o, "rcpt"));
		if (json_integer_value(json_object_get(o, "id")) == id &&
		    (rcpt == NULL || (r && strcmp(r, rcpt) == 0)))
			n++;
		json_decref(o);
	}
	fclose(fp);
	return n;
}

static void test_local_delivered_remote_pending(void **state)
{
	struct fixture *f = *state;
	char *id = enqueue(f, "carol@remote.example", "alice@example.org", "BOB@Example.Org",
			   "far@remote.example", NULL);
	struct q_env env;
	char *msg;

	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	msg = mailbox_message(f->dir, "alice");
	assert_string_equal(msg, "Return-Path: <carol@remote.example>\n"
				 "Delivered-To: alice@example.org\n"
				 "Received: from client\n\tby gw\nSubject: test\n\nhello\n");
	free(msg);
	assert_int_equal(count_files(f->dir, "bob", "new"), 1);
	assert_int_equal(count_files(f->dir, "alice", "tmp"), 0);

	assert_true(queued(f, id));
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_OK);
	assert_int_equal(find_rcpt(&env, "alice@example.org")->state, RCPT_DELIVERED);
	assert_int_equal(find_rcpt(&env, "BOB@Example.Org")->state, RCPT_DELIVERED);
	assert_int_equal(find_rcpt(&env, "far@remote.example")->state, RCPT_PENDING);
	assert_int_equal(find_rcpt(&env, "far@remote.example")->attempts, 0);
	q_env_free(&env);
	assert_int_equal(count_events(f, EV_LOCAL_DELIVERED, "alice@example.org"), 1);
	assert_int_equal(count_events(f, EV_LOCAL_DELIVERED, "bob@example.org"), 1);

	/* A second run delivers nothing twice and keeps waiting for the remote one. */
	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	assert_int_equal(count_files(f->dir, "alice", "new"), 1);
	assert_true(queued(f, id));
	free(id);
}

static void test_all_done_removes_message(void **state)
{
	struct fixture *f = *state;
	char *id = enqueue(f, "", "postmaster@example.org", "alice@example.net", NULL);

	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	assert_int_equal(count_files(f->dir, "postmaster", "new"), 1);
	assert_int_equal(count_files(f->dir, "alice", "new"), 1);
	assert_false(queued(f, id));
	free(id);
}

static void test_alias_expansion(void **state)
{
	struct fixture *f = *state;
	char *id = enqueue(f, "carol@remote.example", "Sales@example.org", NULL);
	char *msg;

	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	msg = mailbox_message(f->dir, "alice");
	assert_non_null(strstr(msg, "Delivered-To: alice@example.org\n"));
	free(msg);
	msg = mailbox_message(f->dir, "bob");
	assert_non_null(strstr(msg, "Delivered-To: bob@example.net\n"));
	free(msg);
	assert_int_equal(count_files(f->dir, "sales", "new"), 0);
	assert_false(queued(f, id));
	free(id);
}

static int collect(const char *id, void *arg)
{
	strlist_add(arg, id);
	return 0;
}

static void test_alias_remote_target_is_queued(void **state)
{
	struct fixture *f = *state;
	char *id = enqueue(f, "carol@remote.example", "world@example.org", NULL);
	struct strlist ids = {0};
	struct q_env env;

	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	assert_int_equal(count_files(f->dir, "alice", "new"), 1);
	assert_false(queued(f, id));
	/* the remote target waits in a new message of its own */
	queue_scan(f->q, collect, &ids);
	assert_int_equal(ids.n, 1);
	assert_int_equal(queue_load(f->q, ids.v[0], &env, NULL), Q_OK);
	assert_int_equal(env.nrcpt, 1);
	assert_string_equal(env.rcpt[0].addr, "ext@remote.example");
	assert_int_equal(env.rcpt[0].state, RCPT_PENDING);
	assert_string_equal(env.sender, "carol@remote.example");
	q_env_free(&env);
	strlist_free(&ids);
	free(id);
}

static void test_unknown_and_loop_fail(void **state)
{
	struct fixture *f = *state;
	char *id = enqueue(f, "carol@remote.example", "nobody@example.org", "loop1@example.org",
			   "x/../y@example.org", "far@remote.example", NULL);
	struct q_env env;

	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_OK);
	assert_int_equal(find_rcpt(&env, "nobody@example.org")->state, RCPT_FAILED);
	assert_true(strncmp(find_rcpt(&env, "nobody@example.org")->last_reply, "5.1.1", 5) == 0);
	assert_int_equal(find_rcpt(&env, "loop1@example.org")->state, RCPT_FAILED);
	assert_true(strncmp(find_rcpt(&env, "loop1@example.org")->last_reply, "5.4.6", 5) == 0);
	assert_int_equal(find_rcpt(&env, "x/../y@example.org")->state, RCPT_FAILED);
	q_env_free(&env);
	assert_int_equal(count_events(f, EV_LOCAL_DELIVERY_FAILED, "nobody@example.org"), 1);
	/* no path was made from a stranger's local part */
	assert_int_equal(access("mail", F_OK), -1);
	{
		char *p = xasprintf("%s/mail", f->dir);
		assert_int_equal(access(p, F_OK), -1);
		free(p);
	}
	free(id);
}

static void test_tempfail_then_retry(void **state)
{
	struct fixture *f = *state;
	char *id = enqueue(f, "carol@remote.example", "alice@example.org", "bob@example.org", NULL);
	char *maildir = xasprintf("%s/mail", f->dir), *alice = xasprintf("%s/mail/alice", f->dir);
	const struct q_rcpt *r;
	struct q_env env;
	FILE *fp;

	/* A regular file where alice's directory belongs: even root cannot
	 * create her Maildir, as with a broken or full file system. */
	assert_int_equal(mkdir(maildir, 0700), 0);
	assert_non_null(fp = fopen(alice, "w"));
	fclose(fp);

	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	assert_int_equal(count_files(f->dir, "bob", "new"), 1);
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_OK);
	r = find_rcpt(&env, "alice@example.org");
	assert_int_equal(r->state, RCPT_PENDING);
	assert_int_equal(r->attempts, 1);
	assert_int_equal(r->next_attempt, T0 + 300);
	assert_true(strncmp(r->last_reply, "4.", 2) == 0);
	q_env_free(&env);
	assert_int_equal(count_events(f, EV_LOCAL_DELIVERY_DEFERRED, "alice@example.org"), 1);

	/* Not due yet: nothing is tried. */
	clock_advance(299LL * 1000000);
	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	assert_int_equal(count_events(f, EV_LOCAL_DELIVERY_DEFERRED, "alice@example.org"), 1);

	/* Due and still broken: the wait doubles. */
	clock_advance(1LL * 1000000);
	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_OK);
	r = find_rcpt(&env, "alice@example.org");
	assert_int_equal(r->attempts, 2);
	assert_int_equal(r->next_attempt, T0 + 300 + 600);
	q_env_free(&env);

	/* Repaired: delivered at the next due run, and the message is done. */
	assert_int_equal(unlink(alice), 0);
	clock_advance(600LL * 1000000);
	assert_int_equal(delivery_run_one(f->d, id), Q_OK);
	assert_int_equal(count_files(f->dir, "alice", "new"), 1);
	assert_int_equal(count_files(f->dir, "bob", "new"), 1);
	assert_false(queued(f, id));
	free(maildir);
	free(alice);
	free(id);
}

static void test_kick_runs_from_event_loop(void **state)
{
	struct fixture *f = *state;
	char *id = enqueue(f, "carol@remote.example", "alice@example.org", NULL);

	delivery_kick(f->d, id);
	/* nothing happens until the loop runs: the 250 goes out first */
	assert_int_equal(count_files(f->dir, "alice", "new"), 0);
	assert_int_not_equal(event_base_dispatch(f->base), -1);
	assert_int_equal(count_files(f->dir, "alice", "new"), 1);
	assert_false(queued(f, id));
	free(id);
}

static void test_scan_runs_every_due_message(void **state)
{
	struct fixture *f = *state;
	char *a = enqueue(f, "carol@remote.example", "alice@example.org", NULL);
	char *b = enqueue(f, "carol@remote.example", "bob@example.org", "far@remote.example", NULL);

	delivery_scan(f->d);
	assert_int_equal(count_files(f->dir, "alice", "new"), 0);
	assert_int_not_equal(event_base_dispatch(f->base), -1);
	assert_int_equal(count_files(f->dir, "alice", "new"), 1);
	assert_int_equal(count_files(f->dir, "bob", "new"), 1);
	assert_false(queued(f, a));
	assert_true(queued(f, b));
	free(a);
	free(b);
}

/* Runs one queue pass (delivery_scan) to its end. */
static void scan(struct fixture *f)
{
	delivery_scan(f->d);
	assert_int_not_equal(event_base_dispatch(f->base), -1);
}

/* A queue pass asks the index's due-time heap: a deferred message is not
 * tried before its next attempt, is tried when it is due, and after each
 * try is due at its new next attempt; once delivered it leaves the index. */
static void test_scan_takes_only_due_messages(void **state)
{
	struct fixture *f = *state;
	char *id = enqueue(f, "carol@remote.example", "alice@example.org", NULL);
	char *maildir = xasprintf("%s/mail", f->dir), *alice = xasprintf("%s/mail/alice", f->dir);
	struct qindex *ix = queue_index(f->q);
	time_t due;
	FILE *fp;

	assert_int_equal(mkdir(maildir, 0700), 0); /* alice's Maildir cannot be made */
	assert_non_null(fp = fopen(alice, "w"));
	fclose(fp);
	assert_int_equal(qindex_due_of(ix, id, &due), 0);
	assert_int_equal(due, T0); /* new mail: due from its arrival */
	scan(f);
	assert_int_equal(count_events(f, EV_LOCAL_DELIVERY_DEFERRED, "alice@example.org"), 1);
	assert_int_equal(qindex_due_of(ix, id, &due), 0);
	assert_int_equal(due, T0 + 300);

	clock_advance(299LL * 1000000);
	scan(f); /* not due: not even loaded */
	assert_int_equal(count_events(f, EV_LOCAL_DELIVERY_DEFERRED, "alice@example.org"), 1);
	clock_advance(1LL * 1000000);
	scan(f);
	assert_int_equal(count_events(f, EV_LOCAL_DELIVERY_DEFERRED, "alice@example.org"), 2);
	assert_int_equal(qindex_due_of(ix, id, &due), 0);
	assert_int_equal(due, T0 + 300 + 600);

	assert_int_equal(unlink(alice), 0);
	clock_advance(600LL * 1000000);
	scan(f);
	assert_int_equal(count_files(f->dir, "alice", "new"), 1);
	assert_false(queued(f, id));
	assert_int_equal(qindex_due_of(ix, id, &due), -1);
	free(maildir);
	free(alice);
	free(id);
}

struct client {
	struct event_base *base;
	char reply[128];
	size_t len;
};

static void on_client_reply(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	ssize_t n = read(fd, c->reply + c->len, sizeof(c->reply) - 1 - c->len);

	if (n > 0) {
		c->len += (size_t)n;
		return;
	}
	c->reply[c->len] = '\0';
	event_base_loopbreak(c->base);
}

/* Runs control_send(cmd) in a child while our loop serves the socket;
 * returns "rc reply" as the child saw it. */
static char *control_roundtrip(struct fixture *f, const char *cmd)
{
	struct client c = {.base = f->base};
	struct event *ev;
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char reply[64] = "";
		int rc = control_send(f->dir, cmd, reply, sizeof(reply));
		dprintf(p[1], "%d %s", rc, reply);
		_exit(0);
	}
	close(p[1]);
	ev = event_new(f->base, p[0], EV_READ | EV_PERSIST, on_client_reply, &c);
	event_add(ev, NULL);
	event_base_dispatch(f->base);
	event_free(ev);
	close(p[0]);
	waitpid(pid, NULL, 0);
	return xstrdup(c.reply);
}

static void test_control_socket(void **state)
{
	struct fixture *f = *state;
	char *sock = xasprintf("%s/control.sock", f->dir), *reply;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct control *ctl;
	char buf[16];
	struct stat st;
	char *id;
	int fd;

	/* nothing listens: the client says so at once */
	assert_int_equal(control_send(f->dir, "ping", buf, sizeof(buf)), -1);
	/* a stale socket left by a crashed daemon is replaced */
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	ctl = control_listen(f->base, f->dir, f->d, geteuid(), getegid());
	assert_non_null(ctl);
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660); /* the admin group may */
	assert_int_equal(st.st_gid, getegid());

	reply = control_roundtrip(f, "ping");
	assert_string_equal(reply, "0 pong");
	free(reply);
	reply = control_roundtrip(f, "launch missiles");
	assert_string_equal(reply, "0 error unknown command");
	free(reply);

	/* "kick" makes the daemon run the queue */
	id = enqueue(f, "carol@remote.example", "alice@example.org", NULL);
	reply = control_roundtrip(f, "kick");
	assert_string_equal(reply, "0 ok");
	free(reply);
	assert_int_not_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), -1);
	assert_int_equal(count_files(f->dir, "alice", "new"), 1);
	assert_false(queued(f, id));

	control_free(ctl);
	assert_int_equal(access(sock, F_OK), -1);
	free(id);
	free(sock);
}

int main(void)
{
	modules_register();
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_local_delivered_remote_pending),
	    T(test_all_done_removes_message),
	    T(test_alias_expansion),
	    T(test_alias_remote_target_is_queued),
	    T(test_unknown_and_loop_fail),
	    T(test_tempfail_then_retry),
	    T(test_kick_runs_from_event_loop),
	    T(test_scan_runs_every_due_message),
	    T(test_scan_takes_only_due_messages),
	    T(test_control_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
