/* Control socket DIR/control.sock (mode 0660, the admin group): a line
 * protocol for local programs ("kick" -> "ok", "ping" -> "pong", "status" ->
 * lines then close, "dial [ENTRY]" -> "progress: ..." lines, then "result:
 * ok|failed ..." and close, "queue-list" -> the queue from its index in
 * slices that yield to the loop). Invariant: only root, the daemon's own user and
 * members of the admin group get an answer (the socket's mode, and the
 * peer's credentials checked with SO_PEERCRED); a bad command gets an error
 * line, never a silent close, and a client that goes away stops watching
 * its session (the session itself goes on). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "daemon/control.h"
#include "deliver/delivery.h"
#include "dialup/session.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/priv.h"
#include "mail/event.h"
#include "lib/xmalloc.h"
#include "queue/qindex.h"
#include "queue/queue.h"

#define CONTROL_LINE_MAX   512
#define CONTROL_IDLE_SEC   30			     /* a silent client is dropped after this */
#define CONTROL_CLIENT_SEC 2			     /* control_send gives up after this */
#define CONTROL_DENIED	   "error permission denied" /* to a peer not allowed */
#define CONTROL_LIST_SLOTS 4096			     /* index entries per listing slice */
#define CONTROL_LIST_HIGH  (256 * 1024)		     /* listing output queued before waiting */
#define CONTROL_LIST_LOW   (64 * 1024) /* ... until the client has read it down to this */

struct control_client;

struct control {
	struct evconnlistener *listener;
	struct delivery *delivery;
	struct sessions *sessions;
	struct queue *queue; /* "queue-count" from its index; NULL: off */
	struct control_client *clients;
	char *path;
	gid_t admin_gid; /* may connect besides root and the daemon's user */
	int (*reload)(void *arg, int logs_only, struct buf *out);
	void *reload_arg;
};

/* A "queue-list" under way: where it is in the index, and its filter. */
struct control_listing {
	struct qindex_filter f;
	char *args;	    /* f's strings point into it */
	uint32_t pos;	    /* the next index entry */
	struct event *next; /* the next slice, after the loop's other events */
};

struct control_client {
	struct control *c;
	struct bufferevent *bev;
	struct control_listing *list; /* "queue-list" streaming; NULL: none */
	int watch;		      /* session watch id; 0: none */
	int closing;		      /* closed once the output is written */
	struct control_client *next;
};

/* Fills sa with DIR/control.sock; -1 if the path does not fit. */
static int control_addr(const char *dir, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/control.sock", dir) >=
	    sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static void control_list_free(struct control_client *cl)
{
	if (cl->list == NULL)
		return;
	event_free(cl->list->next);
	free(cl->list->args);
	free(cl->list);
	cl->list = NULL;
}

static void control_client_free(struct control_client *cl)
{
	struct control *c = cl->c;

	for (struct control_client **p = &c->clients; *p; p = &(*p)->next)
		if (*p == cl) {
			*p = cl->next;
			break;
		}
	if (cl->watch && c->sessions)
		sessions_unwatch(c->sessions, cl->watch);
	control_list_free(cl);
	bufferevent_free(cl->bev);
	free(cl);
}

/* Writes text and closes once it is out. */
static void control_finish(struct control_client *cl, const char *text)
{
	cl->closing = 1;
	bufferevent_write(cl->bev, text, strlen(text));
}

static void control_watch_line(const char *text, void *arg)
{
	struct control_client *cl = arg;

	evbuffer_add_printf(bufferevent_get_output(cl->bev), "progress: %s\n", text);
}

static void control_watch_done(int ok, const char *summary, void *arg)
{
	struct control_client *cl = arg;
	char *line = xasprintf("result: %s %s\n", ok ? "ok" : "failed", summary);

	cl->watch = 0;
	control_finish(cl, line);
	free(line);
}

/* "dial [ENTRY]": follows the session until it ends. */
static void control_dial(struct control_client *cl, const char *arg)
{
	struct session_watch w = {control_watch_line, control_watch_done, cl};
	struct buf why = BUF_INIT;
	int id;

	if (cl->c->sessions == NULL) {
		control_finish(cl, "error dial-up sessions are not available\n");
		return;
	}
	bufferevent_set_timeouts(cl->bev, NULL, NULL);
	id = sessions_dial(cl->c->sessions, *arg ? arg : NULL, &w, &why);
	if (id < 0) {
		char *line = xasprintf("error %s\n", buf_cstr(&why));
		control_finish(cl, line);
		free(line);
	} else if (!cl->closing)
		cl->watch = id;
	buf_free(&why);
}

static void control_status(struct control_client *cl)
{
	struct buf out = BUF_INIT;

	if (cl->c->sessions)
		sessions_status(cl->c->sessions, &out);
	else
		buf_puts(&out, "link: not configured\n");
	control_finish(cl, buf_cstr(&out));
	buf_free(&out);
}

/* "reload" (what SIGHUP does) and "reopen-logs" (the logs only): "ok
 * WHAT WAS DONE" or "error WHAT FAILED". */
static void control_reload(struct control_client *cl, int logs_only)
{
	struct control *c = cl->c;
	struct buf out = BUF_INIT, line = BUF_INIT;
	int rc = -1;

	if (c->reload)
		rc = c->reload(c->reload_arg, logs_only, &out);
	else
		buf_puts(&out, "reload is not available");
	buf_printf(&line, "%s %s\n", rc < 0 ? "error" : "ok", buf_cstr(&out));
	bufferevent_write(cl->bev, line.data, line.len);
	buf_free(&out);
	buf_free(&line);
}

/* One "key=value" word of queue-count into f; -1 if it is not one. */
static int control_filter_word(char *w, struct qindex_filter *f)
{
	char *eq = strchr(w, '='), *end;
	long long t;

	if (eq == NULL)
		return -1;
	*eq++ = '\0';
	if (strcmp(w, "domain") == 0)
		f->domain = eq;
	else if (strcmp(w, "link") == 0)
		f->link = eq;
	else if (strcmp(w, "state") == 0)
		return (f->state = qindex_state_parse(eq)) < 0 ? -1 : 0;
	else if (strcmp(w, "older") == 0) {
		t = strtoll(eq, &end, 10);
		if (*eq == '\0' || *end || t < 0)
			return -1;
		f->older_than = (time_t)t;
	} else
		return -1;
	return 0;
}

/* The words of args (changed in place) into f; -1 if one is not a filter. */
static int control_filter_parse(char *args, struct qindex_filter *f)
{
	char *save = NULL, *w;

	memset(f, 0, sizeof(*f));
	for (w = strtok_r(args, " ", &save); w; w = strtok_r(NULL, " ", &save))
		if (control_filter_word(w, f) < 0)
			return -1;
	return 0;
}

/* "queue-count [domain=D] [link=L] [state=S] [older=T]": "ok N" from the
 * queue's index, with " recovering" while start-up recovery goes on. */
static void control_queue_count(struct control_client *cl, const char *args)
{
	struct qindex_filter f;
	struct q_recover_progress p;
	char *copy = xstrdup(args), line[96];
	int bad = control_filter_parse(copy, &f) < 0;

	if (cl->c->queue == NULL || bad)
		snprintf(line, sizeof(line), "error %s\n",
			 bad ? "bad filter" : "queue-count is not available");
	else
		snprintf(line, sizeof(line), "ok %u%s\n",
			 qindex_count(queue_index(cl->c->queue), &f),
			 queue_recover_progress(cl->c->queue, &p) ? " recovering" : "");
	free(copy);
	bufferevent_write(cl->bev, line, strlen(line));
}

/* One slice of a listing; the next one comes after the loop's other
 * events, or when the client has read what is queued for it. */
static void control_list_more(struct control_client *cl)
{
	struct control_listing *l = cl->list;
	struct evbuffer *out = bufferevent_get_output(cl->bev);
	struct buf lines = BUF_INIT;
	struct timeval now = {0, 0};
	int more =
	    qindex_list(queue_index(cl->c->queue), &l->pos, &l->f, CONTROL_LIST_SLOTS, &lines);

	if (lines.len)
		evbuffer_add(out, lines.data, lines.len);
	buf_free(&lines);
	if (!more) {
		control_list_free(cl);
		control_finish(cl, "end\n");
	} else if (evbuffer_get_length(out) < CONTROL_LIST_HIGH)
		evtimer_add(l->next, &now);
	/* else control_on_write goes on once the output is down to the low mark */
}

static void control_list_on_timer(evutil_socket_t fd, short what, void *arg)
{
	control_list_more(arg);
}

/* "queue-list [filters as queue-count]": "ok", one line per matching
 * message (qindex_list), "end". "error recovering" while the index is not
 * complete (the caller reads the disk instead). */
static void control_queue_list(struct control_client *cl, const char *args)
{
	struct q_recover_progress p;
	struct qindex_filter f;
	char *copy = xstrdup(args);
	const char *why = control_filter_parse(copy, &f) < 0 ? "error bad filter\n" : NULL;

	if (cl->c->queue == NULL)
		why = "error queue-list is not available\n";
	else if (why == NULL && queue_recover_progress(cl->c->queue, &p))
		why = "error recovering\n";
	if (why) {
		control_finish(cl, why);
		free(copy);
		return;
	}
	cl->list = xcalloc(1, sizeof(*cl->list));
	cl->list->f = f;
	cl->list->args = copy;
	cl->list->next = evtimer_new(bufferevent_get_base(cl->bev), control_list_on_timer, cl);
	bufferevent_setwatermark(cl->bev, EV_WRITE, CONTROL_LIST_LOW, 0);
	bufferevent_set_timeouts(cl->bev, NULL, &(struct timeval){CONTROL_IDLE_SEC, 0});
	bufferevent_write(cl->bev, "ok\n", 3);
	control_list_more(cl);
}

/* "kick ID": new mail in the queue; ID, written by another process
 * (sendmail), goes into the index before the answer, so that a listing
 * right after shows it. */
static void control_kick(struct control *c, const char *id)
{
	struct q_env env;

	if (c->queue && !qindex_has(queue_index(c->queue), id) &&
	    queue_load_envelope(c->queue, id, &env) == Q_OK)
		q_env_free(&env);
	delivery_kick(c->delivery, id);
}

static void control_command(struct control_client *cl, const char *line)
{
	const char *answer = "error unknown command\n";

	if (strcmp(line, "dial") == 0 || strncmp(line, "dial ", 5) == 0) {
		control_dial(cl, line[4] ? line + 5 : "");
		return;
	}
	if (strcmp(line, "queue-count") == 0 || strncmp(line, "queue-count ", 12) == 0) {
		control_queue_count(cl, line + 11);
		return;
	}
	if (strcmp(line, "queue-list") == 0 || strncmp(line, "queue-list ", 11) == 0) {
		control_queue_list(cl, line + 10);
		return;
	}
	if (strcmp(line, "status") == 0) {
		control_status(cl);
		return;
	}
	if (strcmp(line, "reload") == 0 || strcmp(line, "reopen-logs") == 0) {
		control_reload(cl, strcmp(line, "reopen-logs") == 0);
		return;
	}
	if (strcmp(line, "kick") == 0) {
		/* sendmail -q, or a sendmail that committed without saying its
		 * id: the queue run also looks for messages the index lacks. */
		delivery_discover(cl->c->delivery);
		answer = "ok\n";
	} else if (strncmp(line, "kick ", 5) == 0 && queue_id_valid(line + 5)) {
		control_kick(cl->c, line + 5); /* just committed by sendmail */
		answer = "ok\n";
	} else if (strcmp(line, "flush") == 0) {
		delivery_flush(cl->c->delivery); /* every pending recipient, now */
		answer = "ok\n";
	} else if (strcmp(line, "ping") == 0)
		answer = "pong\n";
	bufferevent_write(cl->bev, answer, strlen(answer));
}

static void control_on_read(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while (!cl->closing && !cl->watch && !cl->list &&
	       (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		if (n > CONTROL_LINE_MAX)
			bufferevent_write(bev, "error line too long\n", 20);
		else
			control_command(cl, line);
		free(line);
	}
	if (evbuffer_get_length(in) > CONTROL_LINE_MAX) {
		evbuffer_drain(in, evbuffer_get_length(in));
		bufferevent_write(bev, "error line too long\n", 20);
	}
}

static void control_on_write(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;

	if (cl->list && !evtimer_pending(cl->list->next, NULL))
		control_list_more(cl);
	else if (cl->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		control_client_free(cl);
}

static void control_on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		control_client_free(arg);
}

/* The peer's credentials (SO_PEERCRED): 1 if it may talk to us; else it
 * is told so, and the refusal is logged (event 4190). */
static int control_peer_allowed(struct control *c, int fd)
{
	static const char denied[] = CONTROL_DENIED "\n";
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char uid[16], pid[16];
	const char *kv[] = {"uid", uid, "pid", pid, NULL};

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("control: SO_PEERCRED");
		return 0;
	}
	if (priv_uid_allowed(cred.uid, cred.gid, geteuid(), c->admin_gid))
		return 1;
	snprintf(uid, sizeof(uid), "%u", (unsigned)cred.uid);
	snprintf(pid, sizeof(pid), "%d", (int)cred.pid);
	event_logkv(EV_CONTROL_DENIED, kv,
		    "Control socket: uid %s (pid %s) is not allowed (not root, not the daemon's "
		    "user, not in the admin group); turned away",
		    uid, pid);
	(void)send(fd, denied, sizeof(denied) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	return 0;
}

static void control_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			      int salen, void *arg)
{
	struct event_base *base = evconnlistener_get_base(l);
	struct bufferevent *bev;
	struct timeval idle = {CONTROL_IDLE_SEC, 0};
	struct control *c = arg;
	struct control_client *cl;

	if (!control_peer_allowed(c, fd)) {
		close(fd);
		return;
	}
	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	cl = xcalloc(1, sizeof(*cl));
	cl->c = c;
	cl->bev = bev;
	cl->next = c->clients;
	c->clients = cl;
	bufferevent_setcb(bev, control_on_read, control_on_write, control_on_event, cl);
	bufferevent_set_timeouts(bev, &idle, &idle);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Binds a listening socket at sa, replacing a stale one but never the
 * socket of a daemon that still answers; the socket file is 0660, owner
 * and admin_gid. */
static int control_bind(const struct sockaddr_un *sa, uid_t owner, gid_t admin_gid)
{
	char reply[16];
	const char *dir_end = strrchr(sa->sun_path, '/');
	char *dir = xstrndup(sa->sun_path, (size_t)(dir_end - sa->sun_path));
	int fd = -1, alive = control_send(dir, "ping", reply, sizeof(reply)) == 0;
	mode_t old;

	free(dir);
	if (alive) {
		log_warnx("control: another daemon answers on %s", sa->sun_path);
		return -1;
	}
	unlink(sa->sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	old = umask(0177); /* the socket file is created 0600 */
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fd, 16) < 0) {
		int saved = errno;
		umask(old);
		close(fd);
		errno = saved;
		return -1;
	}
	umask(old);
	if (chown(sa->sun_path, owner, admin_gid) < 0 || chmod(sa->sun_path, 0660) < 0)
		log_warn("control: cannot give %s to uid %u gid %u", sa->sun_path, (unsigned)owner,
			 (unsigned)admin_gid);
	return fd;
}

struct control *control_listen(struct event_base *base, const char *dir, struct delivery *d,
			       uid_t owner, gid_t admin_gid)
{
	struct sockaddr_un sa;
	struct control *c;
	int fd;

	if (control_addr(dir, &sa) < 0 || (fd = control_bind(&sa, owner, admin_gid)) < 0) {
		log_warn("control: cannot listen on %s/control.sock", dir);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->delivery = d;
	c->admin_gid = admin_gid;
	c->path = xstrdup(sa.sun_path);
	c->listener = evconnlistener_new(base, control_on_accept, c, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (c->listener == NULL) {
		log_warnx("control: cannot watch %s", c->path);
		close(fd);
		control_free(c);
		return NULL;
	}
	return c;
}

void control_set_queue(struct control *c, struct queue *q)
{
	if (c)
		c->queue = q;
}

void control_set_sessions(struct control *c, struct sessions *s)
{
	if (c)
		c->sessions = s;
}

void control_set_reload(struct control *c, int (*fn)(void *arg, int logs_only, struct buf *out),
			void *arg)
{
	if (c) {
		c->reload = fn;
		c->reload_arg = arg;
	}
}

void control_free(struct control *c)
{
	if (c == NULL)
		return;
	while (c->clients)
		control_client_free(c->clients);
	if (c->listener) {
		evconnlistener_free(c->listener);
		unlink(c->path);
	}
	free(c->path);
	free(c);
}

/* Waits for fd to be ready for events until deadline (clock_usec). */
static int control_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = {fd, events, 0};
	int64_t left = deadline - clock_usec();
	int rc;

	if (left <= 0)
		return -1;
	do
		rc = poll(&p, 1, (int)(left / 1000) + 1);
	while (rc < 0 && errno == EINTR);
	return rc > 0 ? 0 : -1;
}

/* Reads one line (without its newline) into reply before deadline. */
static int control_read_line(int fd, char *reply, size_t replylen, int64_t deadline)
{
	size_t len = 0;

	for (;;) {
		char ch;
		ssize_t n;

		if (control_wait(fd, POLLIN, deadline) < 0)
			return -1;
		n = read(fd, &ch, 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		if (ch == '\n')
			break;
		if (len + 1 < replylen)
			reply[len++] = ch;
	}
	if (replylen > 0)
		reply[len] = '\0';
	return 0;
}

/* Closes the client's socket keeping errno (the caller tells EACCES from
 * ECONNREFUSED). */
static void control_close(int fd, char *line)
{
	int saved = errno;

	free(line);
	close(fd);
	errno = saved;
}

int control_send(const char *dir, const char *cmd, char *reply, size_t replylen)
{
	int64_t deadline = clock_usec() + (int64_t)CONTROL_CLIENT_SEC * 1000000;
	struct sockaddr_un sa;
	char *line = NULL;
	int fd = -1, rc = -1, sent;

	if (control_addr(dir, &sa) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A unix socket connects at once or not at all (EAGAIN: backlog full). */
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	line = xasprintf("%s\n", cmd);
	if (control_wait(fd, POLLOUT, deadline) < 0)
		goto out;
	/* A daemon that turns us away may have closed before we sent: its
	 * answer is still there to read. */
	sent = send(fd, line, strlen(line), MSG_NOSIGNAL) == (ssize_t)strlen(line);
	rc = control_read_line(fd, reply, replylen, deadline);
	if (rc == 0 && replylen > 0 && strcmp(reply, CONTROL_DENIED) == 0) {
		errno = EACCES;
		rc = -1;
	} else if (!sent)
		rc = -1;
out:
	control_close(fd, line);
	return rc;
}

/* Reads lines from fd (blocking, no time limit: a session may take long)
 * and hands each to on_line. */
static int control_stream_lines(int fd, int (*on_line)(const char *line, void *arg), void *arg)
{
	struct buf line = BUF_INIT;
	char chunk[16384]; /* a queue listing is megabytes */
	int rc = 0, first = 1;

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		const char *p = chunk, *end = chunk + (n > 0 ? n : 0), *nl;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -1 : rc;
			break;
		}
		while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			buf_append(&line, p, (size_t)(nl - p));
			p = nl + 1;
			if (first && strcmp(buf_cstr(&line), CONTROL_DENIED) == 0) {
				errno = EACCES;
				rc = -1;
				goto out;
			}
			first = 0;
			rc = on_line(buf_cstr(&line), arg);
			buf_reset(&line);
			if (rc != 0)
				goto out;
		}
		buf_append(&line, p, (size_t)(end - p));
	}
	if (line.len)
		rc = on_line(buf_cstr(&line), arg);
out:
	buf_free(&line);
	return rc;
}

int control_stream(const char *dir, const char *cmd, int (*on_line)(const char *line, void *arg),
		   void *arg)
{
	struct sockaddr_un sa;
	char *line = NULL;
	int fd, rc = -1, sent;

	if (control_addr(dir, &sa) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	line = xasprintf("%s\n", cmd);
	sent = send(fd, line, strlen(line), MSG_NOSIGNAL) == (ssize_t)strlen(line);
	rc = control_stream_lines(fd, on_line, arg);
	if (!sent && !(rc < 0 && errno == EACCES))
		rc = -1;
out:
	control_close(fd, line);
	return rc;
}
