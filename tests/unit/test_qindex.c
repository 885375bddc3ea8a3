/* Unit tests of the queue index (src/queue/qindex.c): counters by link and
 * held domain follow commits, updates and removals exactly as a scan would
 * count them; the index learns of a commit only when it succeeds; memory
 * per message stays within the documented bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/xmalloc.h"
#include "mail/config.h"
#include "queue/qindex.h"
#include "queue/queue.h"
#include "queue/retry.h"
#include "test_tmp.h"

static const char conf_text[] = "local_domains = localhost\n"
				"hold_domains = site.example\n"
				"[routes]\n"
				"far.example = smarthost 127.0.0.1:9 via=wan\n"
				".sub.example = hold\n"
				"* = smarthost 127.0.0.1:9\n";

static void load_conf(struct config *cfg, char *dir)
{
	char path[TEST_TMP_MAX + 16];
	struct buf err = BUF_INIT;
	FILE *f;

	assert_non_null(test_tmp_dir(dir, TEST_TMP_MAX, "qindex"));
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(conf_text, f);
	fclose(f);
	if (config_load(cfg, path, &err) != 0)
		fail_msg("config refused: %s", buf_cstr(&err));
	buf_free(&err);
}

static void env_make(struct q_env *env, const char *id, const char *const *rcpts)
{
	memset(env, 0, sizeof(*env));
	snprintf(env->id, sizeof(env->id), "%s", id);
	env->created = 1700000000;
	env->size = 1000;
	for (; *rcpts; rcpts++)
		q_env_add_rcpt(env, *rcpts);
}

static int collect(const char *id, void *arg)
{
	strlist_add(arg, id);
	return 0;
}

static void test_counts_follow_changes(void **state)
{
	char dir[TEST_TMP_MAX];
	struct config cfg;
	struct qindex *ix = qindex_new();
	struct qindex_totals t;
	struct strlist wan = {0}, ids = {0};
	struct q_env a, b, c;
	unsigned n, urgent;
	const char *ra[] = {"x@far.example", "y@FAR.example", "z@other.example", NULL};
	const char *rb[] = {"p@site.example", "q@a.sub.example", NULL};
	const char *rc[] = {"u@far.example", "v@site.example", NULL};

	load_conf(&cfg, dir);
	qindex_set_config(ix, &cfg);
	strlist_add(&wan, "wan");
	env_make(&a, "000000000000010000000A", ra);
	env_make(&b, "000000000000020000000B", rb);
	env_make(&c, "000000000000030000000C", rc);
	qindex_put(ix, &a, PRIORITY_NORMAL);
	qindex_put(ix, &b, PRIORITY_NORMAL);
	qindex_put(ix, &c, PRIORITY_URGENT);
	qindex_totals(ix, &t);
	assert_int_equal(t.messages, 3);
	assert_int_equal(t.urgent, 1);
	assert_int_equal(t.held, 2);
	assert_int_equal(t.pending, 7);
	assert_int_equal(t.bytes, 3000);
	qindex_links_count(ix, &wan, &n, &urgent);
	assert_int_equal(n, 2); /* a counts once for its two far.example rcpts */
	assert_int_equal(urgent, 1);

	/* Held for site.example: b and c, oldest first, nothing else. */
	assert_int_equal(qindex_held_for(ix, "Site.Example", 0, collect, &ids), 2);
	assert_int_equal(ids.n, 2);
	assert_true(strlist_has(&ids, b.id) && strlist_has(&ids, c.id));
	/* "@sub.example": a.sub.example is held under it; b once. */
	assert_int_equal(qindex_held_for(ix, "sub.example", 1, NULL, NULL), 1);
	assert_int_equal(qindex_held_for(ix, "sub.example", 0, NULL, NULL), 0);
	assert_int_equal(qindex_held_for(ix, "other.example", 0, NULL, NULL), 0);

	/* Filters: one domain is a counter, the others look at each entry. */
	{
		struct qindex_filter f = {.domain = "far.example"};
		assert_int_equal(qindex_count(ix, &f), 2);
		f.state = QINDEX_HELD; /* c: far.example and a held site.example */
		assert_int_equal(qindex_count(ix, &f), 1);
		assert_true(qindex_matches(ix, c.id, &f) && !qindex_matches(ix, a.id, &f));
		f = (struct qindex_filter){.link = "wan", .older_than = 1700000001};
		assert_int_equal(qindex_count(ix, &f), 2);
		f.older_than = 1700000000;
		assert_int_equal(qindex_count(ix, &f), 0);
		f = (struct qindex_filter){.state = QINDEX_DEFERRED};
		assert_int_equal(qindex_count(ix, &f), 0);
		f = (struct qindex_filter){.domain = "nowhere.example"};
		assert_int_equal(qindex_count(ix, &f), 0);
	}

	/* c's far.example recipient is delivered: c no longer counts for wan. */
	c.rcpt[0].state = RCPT_DELIVERED;
	c.rcpt[1].attempts = 1; /* site.example deferred once */
	qindex_update(ix, &c);
	{
		struct qindex_filter f = {.state = QINDEX_DEFERRED};
		assert_int_equal(qindex_count(ix, &f), 1);
	}
	qindex_links_count(ix, &wan, &n, &urgent);
	assert_int_equal(n, 1);
	assert_int_equal(urgent, 0);
	qindex_remove(ix, b.id);
	qindex_remove(ix, b.id); /* twice is harmless */
	assert_int_equal(qindex_held_for(ix, "site.example", 0, NULL, NULL), 1);
	assert_false(qindex_has(ix, b.id));
	assert_true(qindex_has(ix, a.id));
	qindex_remove(ix, a.id);
	qindex_remove(ix, c.id);
	qindex_totals(ix, &t);
	assert_int_equal(t.messages + t.urgent + t.held + t.pending + t.bytes, 0);
	qindex_links_count(ix, &wan, &n, &urgent);
	assert_int_equal(n + urgent, 0);

	q_env_free(&a);
	q_env_free(&b);
	q_env_free(&c);
	strlist_free(&wan);
	strlist_free(&ids);
	qindex_free(ix);
	config_free(&cfg);
	test_tmp_rm(dir);
}

/* Many messages in and out again: the hash keeps finding every id (the
 * deletion path moves entries), and the memory bound of the docs holds. */
static void test_many_and_memory(void **state)
{
	enum { N = 100000 };
	struct qindex *ix = qindex_new();
	struct qindex_totals t;
	const char *r[] = {"a@b.example", NULL};
	struct q_env e;
	size_t per;

	for (unsigned i = 0; i < N; i++) {
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "%014X0000%04X", i * 7919u, i & 0xFFFF);
		env_make(&e, id, r);
		/* A typical envelope: what the listing keeps is the bulk of it. */
		e.sender = xasprintf("user%u@client.example", i);
		e.client = xstrdup("192.0.2.10");
		e.helo = xstrdup("client.example");
		e.message_id = xasprintf("<%u.1700000000@client.example>", i);
		qindex_put(ix, &e, PRIORITY_NORMAL);
		q_env_free(&e);
	}
	per = qindex_memory(ix) / N;
	print_message("qindex: %zu bytes per message at %d messages\n", per, N);
	assert_true(per <= 300);
	for (unsigned i = 0; i < N; i += 2) {
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "%014X0000%04X", i * 7919u, i & 0xFFFF);
		qindex_remove(ix, id);
	}
	for (unsigned i = 0; i < N; i++) {
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "%014X0000%04X", i * 7919u, i & 0xFFFF);
		assert_int_equal(qindex_has(ix, id), i % 2);
	}
	qindex_totals(ix, &t);
	assert_int_equal(t.messages, N / 2);
	qindex_free(ix);
}

/* The listing: every field of the envelope that `dialmail queue --json`
 * shows comes back from a listing line as it went in, whatever bytes it
 * holds; filters apply; slices cover every entry once. */
static void test_listing_round_trip(void **state)
{
	const char *r[] = {"a%b@far.example", "tab\there@x.example", "c@site.example", NULL};
	struct qindex *ix = qindex_new();
	struct qindex_filter f = {0};
	struct q_env e, got;
	struct buf out = BUF_INIT;
	uint32_t pos = 0;
	char *nl, garbage[] = "m\tgarbage";

	env_make(&e, "18000000000000AAAA0001", r);
	e.sender = xstrdup("");
	e.client = xstrdup("192.0.2.1");
	e.message_id = xstrdup("<%41\x7f@x>");
	e.rcpt[0].state = RCPT_DELIVERED;
	e.rcpt[1].state = RCPT_FAILED;
	e.rcpt[1].last_reply = xstrdup("550 5.1.1 no\r\nsuch user");
	e.rcpt[2].attempts = 3;
	e.rcpt[2].next_attempt = 1700003600;
	qindex_put(ix, &e, PRIORITY_NORMAL);
	assert_int_equal(qindex_list(ix, &pos, &f, 1000, &out), 0);
	nl = strchr(out.data, '\n');
	assert_non_null(nl);
	*nl = '\0';
	assert_int_equal(qindex_row_parse(out.data, &got), 0);
	assert_string_equal(got.id, e.id);
	assert_int_equal(got.created, e.created);
	assert_int_equal(got.size, e.size);
	assert_string_equal(got.sender, "");
	assert_string_equal(got.client, "192.0.2.1");
	assert_null(got.helo);
	assert_string_equal(got.message_id, e.message_id);
	assert_int_equal(got.nrcpt, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(got.rcpt[i].addr, e.rcpt[i].addr);
		assert_int_equal(got.rcpt[i].state, e.rcpt[i].state);
		assert_int_equal(got.rcpt[i].attempts, e.rcpt[i].attempts);
		assert_int_equal(got.rcpt[i].next_attempt, e.rcpt[i].next_attempt);
	}
	assert_string_equal(got.rcpt[1].last_reply, e.rcpt[1].last_reply);
	assert_null(got.rcpt[0].last_reply);
	q_env_free(&got);
	/* A filter that matches nothing, and slices of one entry. */
	buf_reset(&out);
	f.domain = "nowhere.example";
	pos = 0;
	assert_int_equal(qindex_list(ix, &pos, &f, 1, &out), 0);
	assert_int_equal(out.len, 0);
	f.domain = NULL;
	e.id[21] = '2';
	qindex_put(ix, &e, PRIORITY_NORMAL);
	pos = 0;
	assert_int_equal(qindex_list(ix, &pos, &f, 1, &out), 1);
	assert_int_equal(qindex_list(ix, &pos, &f, 1, &out), 0);
	assert_non_null(strstr(buf_cstr(&out), "AAAA0001\t"));
	assert_non_null(strstr(buf_cstr(&out), "AAAA0002\t"));
	assert_int_equal(qindex_row_parse(garbage, &got), -1);
	q_env_free(&e);
	buf_free(&out);
	qindex_free(ix);
}

/* Through the queue: a committed message is indexed with its priority, a
 * removed one goes, a batch dropped before its commit never shows. */
static void test_queue_keeps_index(void **state)
{
	char dir[TEST_TMP_MAX];
	struct queue *q;
	struct q_env e;
	struct qindex_totals t;
	struct q_batch *b;
	const char *r[] = {"a@b.example", NULL};
	char msg[] = "Priority: urgent\r\nSubject: x\r\n\r\nbody\r\n";
	struct iovec iov = {msg, sizeof(msg) - 1};
	char id[QUEUE_ID_MAX];

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "qindexq"));
	q = queue_open(dir);
	assert_non_null(q);
	env_make(&e, "", r);
	assert_int_equal(queue_commit(q, &e, &iov, 1), Q_OK);
	memcpy(id, e.id, sizeof(id));
	q_env_free(&e);
	qindex_totals(queue_index(q), &t);
	assert_int_equal(t.messages, 1);
	assert_int_equal(t.urgent, 1);
	assert_int_equal(t.bytes, sizeof(msg) - 1);

	b = queue_batch_new(q);
	env_make(&e, "", r);
	assert_int_equal(queue_batch_add(b, &e, &iov, 1), Q_OK);
	q_env_free(&e);
	queue_batch_free(b); /* never committed */
	qindex_totals(queue_index(q), &t);
	assert_int_equal(t.messages, 1);

	assert_int_equal(queue_remove(q, id), Q_OK);
	qindex_totals(queue_index(q), &t);
	assert_int_equal(t.messages, 0);
	queue_close(q);
	test_tmp_rm(dir);
}

/* Found by fuzz_smtp_data: an empty message's content is an iov with no
 * buffer (NULL, 0); its priority is the default, and nothing is read. The
 * header is found across pieces, and only in the first 16 KB. */
static void test_priority_of_pieces(void **state)
{
	struct iovec empty = {NULL, 0};
	static char rest[] = "ect: x\r\nPriority: urgent\r\n\r\nb";
	struct iovec split[3] = {{"Subj", 4}, {NULL, 0}, {rest, sizeof(rest) - 1}};
	struct buf far = BUF_INIT;
	struct iovec late;

	assert_int_equal(qindex_priority_iov(&empty, 1), PRIORITY_NORMAL);
	assert_int_equal(qindex_priority_iov(split, 3), PRIORITY_URGENT);
	for (int i = 0; i < 400; i++)
		buf_printf(&far, "X-Filler-%03d: %s\r\n", i, "some header text to fill the head");
	buf_puts(&far, "Priority: urgent\r\n\r\nbody\r\n");
	late.iov_base = far.data;
	late.iov_len = far.len;
	assert_true(far.len > 16384);
	assert_int_equal(qindex_priority_iov(&late, 1), PRIORITY_NORMAL);
	buf_free(&far);
}

/* --------------------------------------------------------------- due heap */

#define T0 1700000000

/* Takes every message due by until off the heap's top, in order, moving
 * each to far (as the queue run reschedules what it ran); their ids into
 * out. Fails if the order is not (due, id) ascending. */
static void drain(struct qindex *ix, time_t until, time_t far, struct strlist *out)
{
	char id[QUEUE_ID_MAX], prev[QUEUE_ID_MAX] = "";
	time_t due, prev_due = 0;

	while (qindex_next_due(ix, until, id)) {
		assert_int_equal(qindex_due_of(ix, id, &due), 0);
		assert_true(due <= until);
		assert_true(due > prev_due || (due == prev_due && strcmp(id, prev) > 0));
		prev_due = due;
		memcpy(prev, id, sizeof(prev));
		strlist_add(out, id);
		qindex_schedule(ix, id, far);
	}
}

static void put_at(struct qindex *ix, const char *id, time_t created, time_t next, const char *rcpt)
{
	const char *r[] = {rcpt, NULL};
	struct q_env e;

	env_make(&e, id, r);
	e.created = created;
	e.rcpt[0].next_attempt = next;
	qindex_put(ix, &e, PRIORITY_NORMAL);
	q_env_free(&e);
}

/* Due times come from the envelope (the next attempt, or the arrival of
 * mail never tried), the run gets the oldest due first (ties by id, which
 * is arrival), and nothing that is not due yet. */
static void test_due_order(void **state)
{
	struct qindex *ix = qindex_new();
	struct strlist got = {0};
	time_t due;
	char id[QUEUE_ID_MAX];

	put_at(ix, "000000000000050000000E", T0 + 50, 0, "a@x.example");       /* due T0+50 */
	put_at(ix, "000000000000010000000A", T0, T0 + 300, "a@x.example");     /* deferred */
	put_at(ix, "000000000000020000000B", T0 + 10, 0, "a@x.example");       /* due T0+10 */
	put_at(ix, "000000000000030000000C", T0 + 20, T0 + 10, "a@x.example"); /* odd but due */
	put_at(ix, "000000000000040000000D", T0 + 5, 0, "a@x.example");	       /* due T0+5 */
	assert_int_equal(qindex_first_due(ix, &due), 1);
	assert_int_equal(due, T0 + 5);
	assert_int_equal(qindex_due_of(ix, "000000000000010000000A", &due), 0);
	assert_int_equal(due, T0 + 300);
	assert_int_equal(qindex_due_of(ix, "000000000000090000000F", &due), -1);

	assert_int_equal(qindex_next_due(ix, T0 + 4, id), 0); /* nothing due yet */
	drain(ix, T0 + 100, T0 + 1000, &got);
	assert_int_equal(got.n, 4);
	assert_string_equal(got.v[0], "000000000000040000000D");
	assert_string_equal(got.v[1], "000000000000020000000B"); /* T0+10, older id */
	assert_string_equal(got.v[2], "000000000000030000000C");
	assert_string_equal(got.v[3], "000000000000050000000E");
	/* The deferred one comes at its time, before those moved to T0+1000. */
	assert_int_equal(qindex_next_due(ix, T0 + 999, id), 1);
	assert_string_equal(id, "000000000000010000000A");
	strlist_free(&got);
	qindex_free(ix);
}

/* An update takes its due time from the new state (a deferral moves it
 * later, a recipient done leaves the earliest other); a removal anywhere
 * in the heap keeps the others in order; a link up and a flush bring mail
 * forward to its arrival. */
static void test_due_update_remove_wake(void **state)
{
	char dir[TEST_TMP_MAX];
	struct config cfg;
	struct qindex *ix = qindex_new();
	struct strlist got = {0};
	const char *two[] = {"a@far.example", "b@other.example", NULL};
	struct q_env e;
	time_t due;

	load_conf(&cfg, dir);
	qindex_set_config(ix, &cfg);
	env_make(&e, "000000000000010000000A", two);
	e.rcpt[0].next_attempt = T0 + 100;
	e.rcpt[1].next_attempt = T0 + 200;
	qindex_put(ix, &e, PRIORITY_NORMAL);
	put_at(ix, "000000000000020000000B", T0 + 1, T0 + 150, "c@far.example");
	put_at(ix, "000000000000030000000C", T0 + 2, T0 + 160, "d@other.example");
	put_at(ix, "000000000000040000000D", T0 + 3, T0 + 170, "e@other.example");
	assert_int_equal(qindex_due_of(ix, e.id, &due), 0);
	assert_int_equal(due, T0 + 100);
	e.rcpt[0].state = RCPT_DELIVERED; /* the earliest is done */
	qindex_update(ix, &e);
	assert_int_equal(qindex_due_of(ix, e.id, &due), 0);
	assert_int_equal(due, T0 + 200);
	e.rcpt[1].next_attempt = T0 + 50; /* rescheduled sooner */
	qindex_update(ix, &e);
	qindex_remove(ix, "000000000000030000000C"); /* from the middle */
	drain(ix, T0 + 1000, T0 + 5000, &got);
	assert_int_equal(got.n, 3);
	assert_string_equal(got.v[0], e.id);
	assert_string_equal(got.v[1], "000000000000020000000B");
	assert_string_equal(got.v[2], "000000000000040000000D");

	/* Link wan up: its messages (only B now: A's far.example is done)
	 * are due again from their arrival; the others stay put. */
	assert_int_equal(qindex_wake_link(ix, "wan", T0 + 2000), 1);
	assert_int_equal(qindex_wake_link(ix, "nolink", T0 + 2000), 0);
	assert_int_equal(qindex_due_of(ix, "000000000000020000000B", &due), 0);
	assert_int_equal(due, T0 + 1);
	assert_int_equal(qindex_due_of(ix, "000000000000040000000D", &due), 0);
	assert_int_equal(due, T0 + 5000);
	/* A flush: all of them, arrival order. */
	qindex_wake_all(ix, T0 + 2000);
	strlist_free(&got);
	drain(ix, T0 + 2000, T0 + 9000, &got);
	assert_int_equal(got.n, 3);
	assert_string_equal(got.v[0], e.id);
	assert_string_equal(got.v[2], "000000000000040000000D");
	q_env_free(&e);
	strlist_free(&got);
	qindex_free(ix);
	config_free(&cfg);
	test_tmp_rm(dir);
}

/* Many entries with random due times, rescheduled and removed at random:
 * the heap hands out exactly the messages due, in order, and its memory
 * keeps the index within the documented bound per message. */
static void test_due_many(void **state)
{
	enum { N = 100000 };
	struct qindex *ix = qindex_new();
	struct strlist got = {0};
	unsigned seed = 12345, due_by_half = 0;
	static unsigned char alive[N];
	static time_t when[N];
	size_t per;

	for (unsigned i = 0; i < N; i++) {
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "%014X0000%04X", i, i & 0xFFFF);
		seed = seed * 1103515245u + 12345u;
		when[i] = T0 + (time_t)((seed >> 8) % 100000);
		put_at(ix, id, T0 - 1, when[i], "a@b.example");
		alive[i] = 1;
	}
	for (unsigned i = 0; i < N; i += 3) { /* a third moves */
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "%014X0000%04X", i, i & 0xFFFF);
		seed = seed * 1103515245u + 12345u;
		when[i] = T0 + (time_t)((seed >> 8) % 100000);
		qindex_schedule(ix, id, when[i]);
	}
	for (unsigned i = 1; i < N; i += 5) { /* some go */
		char id[QUEUE_ID_MAX];
		snprintf(id, sizeof(id), "%014X0000%04X", i, i & 0xFFFF);
		qindex_remove(ix, id);
		alive[i] = 0;
	}
	for (unsigned i = 0; i < N; i++)
		due_by_half += alive[i] && when[i] <= T0 + 50000;
	per = qindex_memory(ix) / N;
	print_message("qindex with its heap: %zu bytes per message at %d messages\n", per, N);
	assert_true(per <= 300);
	drain(ix, T0 + 50000, T0 + 200000, &got);
	assert_int_equal(got.n, due_by_half);
	strlist_free(&got);
	qindex_free(ix);
}

/* A link's messages, oldest first and each once (a message with two
 * domains via the link too); after a reload the domains are looked up
 * again and the counters follow. */
static void test_link_ids_and_reclassify(void **state)
{
	char dir[TEST_TMP_MAX], path[TEST_TMP_MAX + 16];
	struct config cfg;
	struct qindex *ix = qindex_new();
	struct strlist ids = {0}, wan = {0};
	struct buf err = BUF_INIT;
	const char *two[] = {"a@far.example", "b@far2.example", NULL};
	struct q_env e;
	unsigned n, urgent;
	FILE *f;

	load_conf(&cfg, dir);
	qindex_set_config(ix, &cfg);
	strlist_add(&wan, "wan");
	put_at(ix, "000000000000030000000C", T0, 0, "c@far.example");
	env_make(&e, "000000000000010000000A", two);
	qindex_put(ix, &e, PRIORITY_NORMAL);
	put_at(ix, "000000000000020000000B", T0, 0, "c@other.example");
	put_at(ix, "000000000000040000000D", T0, 0, "d@far2.example");
	assert_int_equal(qindex_link_ids(ix, "wan", &ids), 2);
	assert_string_equal(ids.v[0], "000000000000010000000A");
	assert_string_equal(ids.v[1], "000000000000030000000C");
	assert_int_equal(qindex_link_ids(ix, "none", &ids), 0);
	assert_int_equal(qindex_held_for(ix, "other.example", 0, NULL, NULL), 0);

	/* Reload: far2.example now goes via wan too, other.example is held. */
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("local_domains = localhost\nhold_domains = other.example\n[routes]\n"
	      "far.example = smarthost 127.0.0.1:9 via=wan\n"
	      "far2.example = smarthost 127.0.0.1:9 via=wan\n* = smarthost 127.0.0.1:9\n",
	      f);
	fclose(f);
	config_free(&cfg);
	if (config_load(&cfg, path, &err) != 0)
		fail_msg("config refused: %s", buf_cstr(&err));
	qindex_reclassify(ix);
	qindex_links_count(ix, &wan, &n, &urgent);
	assert_int_equal(n, 3); /* A once, though both its domains go via wan */
	assert_int_equal(qindex_held_for(ix, "other.example", 0, NULL, NULL), 1);
	strlist_free(&ids);
	assert_int_equal(qindex_link_ids(ix, "wan", &ids), 3);
	assert_string_equal(ids.v[2], "000000000000040000000D");
	q_env_free(&e);
	strlist_free(&ids);
	strlist_free(&wan);
	buf_free(&err);
	qindex_free(ix);
	config_free(&cfg);
	test_tmp_rm(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counts_follow_changes),
	    cmocka_unit_test(test_many_and_memory),
	    cmocka_unit_test(test_listing_round_trip),
	    cmocka_unit_test(test_queue_keeps_index),
	    cmocka_unit_test(test_priority_of_pieces),
	    cmocka_unit_test(test_due_order),
	    cmocka_unit_test(test_due_update_remove_wake),
	    cmocka_unit_test(test_due_many),
	    cmocka_unit_test(test_link_ids_and_reclassify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
