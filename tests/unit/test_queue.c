/* Unit tests of the durable queue: files on disk byte for byte, ids, state,
 * removal, scan order, damaged files moved to corrupt/ with event 3013,
 * recovery of tmp/ and orphan state, refused envelopes, a full disk, and
 * group commit (queue_batch_*), also on the committer thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "mail/event.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_file.h"
#include "test_tmp.h"

struct fixture {
	char dir[TEST_TMP_MAX];
	struct queue *q;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (test_tmp_dir(f->dir, sizeof(f->dir), "test_queue") == NULL)
		return -1;
	if (event_open(f->dir, NULL, 0) < 0)
		return -1;
	f->q = queue_open(f->dir);
	if (f->q == NULL)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	queue_close(f->q);
	event_close();
	test_tmp_rm(f->dir);
	free(f);
	return 0;
}

/* Path of name under the fixture's sub directory (static buffer). */
static const char *path_of(struct fixture *f, const char *sub, const char *name)
{
	static char p[2][TEST_TMP_MAX + 512];
	static int k;

	k ^= 1;
	snprintf(p[k], sizeof(p[k]), "%s/%s/%s", f->dir, sub, name);
	return p[k];
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static size_t count_dir(struct fixture *f, const char *sub)
{
	char p[TEST_TMP_MAX + 16];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	snprintf(p, sizeof(p), "%s/%s", f->dir, sub);
	d = opendir(p);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void read_file(const char *path, struct buf *b)
{
	buf_reset(b);
	assert_int_equal(fs_read_file(path, b), 0);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, data, len), 0);
	close(fd);
}

static void env_basic(struct q_env *env, const char *sender)
{
	memset(env, 0, sizeof(*env));
	env->sender = xstrdup(sender);
	env->client = xstrdup("192.0.2.7");
	env->helo = xstrdup("client.example.net");
	env->message_id = xstrdup("<m1@example.net>");
	q_env_add_rcpt(env, "alice@example.org");
	q_env_add_rcpt(env, "bob@example.org");
}

/* Commits text as the content of a basic message; returns its id in id. */
static void commit_text(struct fixture *f, const char *text, char id[QUEUE_ID_MAX])
{
	struct q_env env;
	struct iovec iov = {(void *)text, strlen(text)};

	env_basic(&env, "sender@example.net");
	assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_OK);
	strcpy(id, env.id);
	q_env_free(&env);
}

/* Number of events.jsonl lines with this id whose text contains needle. */
static int count_events(struct fixture *f, int id, const char *needle)
{
	char p[TEST_TMP_MAX + 32];
	FILE *fp;
	char line[4096];
	int n = 0;

	snprintf(p, sizeof(p), "%s/log/events.jsonl", f->dir);
	fp = fopen(p, "r");
	if (fp == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp)) {
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		const char *text = json_string_value(json_object_get(o, "text"));
		if (json_integer_value(json_object_get(o, "id")) == id && text &&
		    strstr(text, needle))
			n++;
		json_decref(o);
	}
	fclose(fp);
	return n;
}

static void test_crc32_known_value(void **state)
{
	/* The standard check value of CRC-32/IEEE (same as zlib's crc32). */
	assert_int_equal(queue_file_crc32(0, "123456789", 9), 0xCBF43926u);
	assert_int_equal(queue_file_crc32(queue_file_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

/* Bit by bit, straight from the definition: the reference for the tables. */
static uint32_t crc32_bitwise(const unsigned char *p, size_t len)
{
	uint32_t c = 0xFFFFFFFFu;

	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
	}
	return ~c;
}

/* Every length and alignment around the 8-byte steps, and chaining. */
static void test_crc32_matches_bitwise(void **state)
{
	unsigned char data[6000];
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(data); i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)(x >> 16);
	}
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 70; len++)
			assert_int_equal(queue_file_crc32(0, data + off, len),
					 crc32_bitwise(data + off, len));
	assert_int_equal(queue_file_crc32(0, data + 3, 5997), crc32_bitwise(data + 3, 5997));
	assert_int_equal(queue_file_crc32(queue_file_crc32(0, data, 1001), data + 1001, 4999),
			 crc32_bitwise(data, 6000));
}

static void test_roundtrip_binary_no_final_crlf(void **state)
{
	struct fixture *f = *state;
	struct q_env env, got;
	struct buf content = BUF_INIT, file = BUF_INIT;
	unsigned char bin[1024];
	const char *head = "Received: from x\r\nSubject: caf\xc3\xa9\r\n\r\n.\r\n..dot\r\n";
	char end[64];

	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7 + 3); /* every byte value, NUL, bare CR/LF */
	struct iovec iov[3] = {{(void *)head, strlen(head)}, {bin, sizeof(bin)}, {"tail", 4}};
	size_t total = strlen(head) + sizeof(bin) + 4;

	env_basic(&env, "");
	env.helo = (free(env.helo), NULL);
	assert_int_equal(queue_commit(f->q, &env, iov, 3), Q_OK);
	assert_true(queue_id_valid(env.id));
	assert_int_equal(env.size, total);
	assert_true(exists(path_of(f, "queue", env.id)));
	assert_int_equal(count_dir(f, "tmp"), 0);

	/* On disk: magic first, end record with size last. */
	read_file(path_of(f, "queue", env.id), &file);
	assert_memory_equal(file.data, "DIALMAIL-QUEUE 1\nid ", 20);
	snprintf(end, sizeof(end), "tail\nEND %zu ", total);
	assert_non_null(memmem(file.data, file.len, end, strlen(end)));
	assert_int_equal(file.data[file.len - 1], '\n');

	assert_int_equal(queue_load(f->q, env.id, &got, &content), Q_OK);
	assert_int_equal(content.len, total);
	assert_memory_equal(content.data, head, strlen(head));
	assert_memory_equal(content.data + strlen(head), bin, sizeof(bin));
	assert_memory_equal(content.data + total - 4, "tail", 4);
	assert_string_equal(got.id, env.id);
	assert_string_equal(got.sender, "");
	assert_string_equal(got.client, "192.0.2.7");
	assert_null(got.helo);
	assert_string_equal(got.message_id, "<m1@example.net>");
	assert_int_equal(got.created, env.created);
	assert_int_equal(got.size, total);
	assert_int_equal(got.nrcpt, 2);
	assert_string_equal(got.rcpt[1].addr, "bob@example.org");
	assert_int_equal(got.rcpt[1].state, RCPT_PENDING);
	q_env_free(&got);
	q_env_free(&env);
	buf_free(&content);
	buf_free(&file);
}

static void test_empty_content_and_helo(void **state)
{
	struct fixture *f = *state;
	struct q_env env, got;
	struct buf content = BUF_INIT;

	env_basic(&env, "s@x");
	assert_int_equal(queue_commit(f->q, &env, NULL, 0), Q_OK);
	assert_int_equal(queue_load(f->q, env.id, &got, &content), Q_OK);
	assert_int_equal(content.len, 0);
	assert_string_equal(got.helo, "client.example.net");
	q_env_free(&got);
	q_env_free(&env);
	buf_free(&content);
}

/* DSN fields (RET, ENVID, NOTIFY, ORCPT) are written as their own records
 * and read back, also after a state update. */
static void test_dsn_fields_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct q_env env, got;
	struct buf file = BUF_INIT;
	const char *want = "envid QQ+2B1\nret HDRS\nrcpt alice@example.org\n"
			   "notify SUCCESS,FAILURE\norcpt rfc822;al+2Bice@example.org\n"
			   "rcpt bob@example.org\nsize 2\n";

	env_basic(&env, "s@x");
	env.envid = xstrdup("QQ+2B1");
	env.ret = Q_RET_HDRS;
	env.rcpt[0].notify = Q_NOTIFY_SUCCESS | Q_NOTIFY_FAILURE;
	env.rcpt[0].orcpt = xstrdup("rfc822;al+2Bice@example.org");
	struct iovec iov = {"hi", 2};
	assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_OK);
	read_file(path_of(f, "queue", env.id), &file);
	assert_non_null(memmem(file.data, file.len, want, strlen(want)));

	assert_int_equal(queue_load(f->q, env.id, &got, NULL), Q_OK);
	assert_string_equal(got.envid, "QQ+2B1");
	assert_int_equal(got.ret, Q_RET_HDRS);
	assert_int_equal(got.rcpt[0].notify, Q_NOTIFY_SUCCESS | Q_NOTIFY_FAILURE);
	assert_string_equal(got.rcpt[0].orcpt, "rfc822;al+2Bice@example.org");
	assert_int_equal(got.rcpt[1].notify, 0);
	assert_null(got.rcpt[1].orcpt);
	got.rcpt[1].state = RCPT_DELIVERED;
	assert_int_equal(queue_update(f->q, &got), Q_OK);
	q_env_free(&got);
	assert_int_equal(queue_load(f->q, env.id, &got, NULL), Q_OK);
	assert_int_equal(got.rcpt[1].state, RCPT_DELIVERED);
	assert_int_equal(got.rcpt[0].notify, Q_NOTIFY_SUCCESS | Q_NOTIFY_FAILURE);
	assert_string_equal(got.envid, "QQ+2B1");
	q_env_free(&got);

	/* NEVER alone, RET=FULL, no ENVID */
	q_env_free(&env);
	env_basic(&env, "s@x");
	env.ret = Q_RET_FULL;
	env.rcpt[1].notify = Q_NOTIFY_NEVER;
	assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_OK);
	assert_int_equal(queue_load(f->q, env.id, &got, NULL), Q_OK);
	assert_null(got.envid);
	assert_int_equal(got.ret, Q_RET_FULL);
	assert_int_equal(got.rcpt[0].notify, 0);
	assert_int_equal(got.rcpt[1].notify, Q_NOTIFY_NEVER);
	q_env_free(&got);
	q_env_free(&env);
	buf_free(&file);
}

/* An image with a correct end record around the given envelope lines. */
static void image_with(struct buf *out, const char *envelope, const char *content)
{
	uint32_t crc;

	buf_reset(out);
	buf_printf(out, "DIALMAIL-QUEUE 1\n%ssize %zu\n%s", envelope, strlen(content), content);
	crc = queue_file_crc32(0, out->data, out->len);
	buf_printf(out, "\nEND %zu %08x\n", strlen(content), crc);
}

/* A file written before the DSN records existed loads as before; damaged
 * DSN records make the file damaged. */
static void test_dsn_old_format_and_bad_records(void **state)
{
	struct fixture *f = *state;
	struct q_env got;
	struct buf img = BUF_INIT;
	char why[QF_WHY_MAX];
	size_t off;
	const char *base = "id 066118CF81531137B80000\ncreated 1795609048\nsender a@x\n"
			   "client local\nrcpt b@y\n";
	static const char *const bad[] = {"notify FAILURE\n", /* before any rcpt */
					  "rcpt b@y\nnotify FAILURE,BOGUS\n",
					  "rcpt b@y\nnotify NEVER\nnotify DELAY\n",
					  "rcpt b@y\norcpt a;b\norcpt a;c\n",
					  "rcpt b@y\nret BOGUS\n",
					  "rcpt b@y\nenvid a\nenvid b\n"};
	struct buf env = BUF_INIT;

	/* old format, through the queue directory */
	image_with(&img, base, "Subject: old\r\n\r\nbody\r\n");
	write_file(path_of(f, "queue", "066118CF81531137B80000"), img.data, img.len);
	memset(&got, 0, sizeof(got));
	assert_int_equal(queue_load(f->q, "066118CF81531137B80000", &got, NULL), Q_OK);
	assert_int_equal(got.nrcpt, 1);
	assert_null(got.envid);
	assert_int_equal(got.ret, Q_RET_NONE);
	assert_int_equal(got.rcpt[0].notify, 0);
	assert_null(got.rcpt[0].orcpt);
	q_env_free(&got);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&env);
		buf_printf(&env, "id 066118CF81531137B80000\ncreated 1\nsender a@x\nclient l\n%s",
			   bad[i]);
		image_with(&img, buf_cstr(&env), "x");
		memset(&got, 0, sizeof(got));
		assert_int_equal(queue_file_parse(img.data, img.len, &got, &off, why), -1);
		assert_non_null(strstr(why, "record"));
	}
	buf_free(&env);
	buf_free(&img);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_ids_unique_sorted_shape(void **state)
{
	enum { N = 20000 };
	char(*ids)[QUEUE_ID_MAX] = xcalloc(N, QUEUE_ID_MAX);

	for (int i = 0; i < N; i++) {
		queue_new_id(ids[i]);
		assert_int_equal(strlen(ids[i]), 22);
		assert_true(queue_id_valid(ids[i]));
		if (i > 0)
			assert_true(strcmp(ids[i - 1], ids[i]) < 0);
	}
	qsort(ids, N, QUEUE_ID_MAX, cmp_str);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	free(ids);
}

static void test_invalid_ids_refused(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"../queue/x",
			     "",
			     "0123456789ABCDEF01234",
			     "0123456789ABCDEF0123456",
			     "0123456789abcdef012345",
			     "0123456789ABCDEF01234/",
			     "..",
			     "0123456789ABCDEF01234G"};
	struct q_env env;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(queue_id_valid(bad[i]));
		errno = 0;
		assert_int_equal(queue_load(f->q, bad[i], &env, NULL), Q_PERMFAIL);
		assert_int_equal(errno, EINVAL);
		errno = 0;
		assert_int_equal(queue_remove(f->q, bad[i]), Q_PERMFAIL);
		assert_int_equal(errno, EINVAL);
	}
	assert_false(queue_id_valid(NULL));
	assert_true(queue_id_valid("0123456789ABCDEF012345"));
}

static void test_crlf_in_envelope_refused(void **state)
{
	struct fixture *f = *state;
	struct q_env env;
	struct iovec iov = {"x\r\n", 3};

	for (int which = 0; which < 4; which++) {
		env_basic(&env, which == 0 ? "a@b\r\nrcpt evil@x" : "a@b");
		if (which == 1)
			q_env_add_rcpt(&env, "c@d\nrcpt evil@x");
		if (which == 2)
			env.helo = (free(env.helo), xstrdup("h\rx"));
		if (which == 3) /* no recipient at all */
			while (env.nrcpt)
				free(env.rcpt[--env.nrcpt].addr);
		errno = 0;
		assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_PERMFAIL);
		assert_int_equal(errno, EINVAL);
		q_env_free(&env);
	}
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(count_dir(f, "tmp"), 0);
}

/* A Message-ID header value is informational: CR/LF are made spaces, not refused. */
static void test_message_id_newline_sanitised(void **state)
{
	struct fixture *f = *state;
	struct q_env env, got;
	struct iovec iov = {"x\r\n", 3};

	env_basic(&env, "a@b");
	env.message_id = (free(env.message_id), xstrdup("<a\r\n b@c>"));
	assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_OK);
	assert_int_equal(queue_load(f->q, env.id, &got, NULL), Q_OK);
	assert_string_equal(got.message_id, "<a   b@c>");
	q_env_free(&got);
	q_env_free(&env);
}

static void test_state_update_reload(void **state)
{
	struct fixture *f = *state;
	struct q_env env, got;
	struct iovec iov = {"Subject: s\r\n\r\nbody\r\n", 20};
	const char *reply = "550 5.1.1 <bob>: no such user\r\n100% sure\x01";

	env_basic(&env, "a@b");
	q_env_add_rcpt(&env, "carol with space@example.org");
	assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_OK);
	assert_false(exists(path_of(f, "state", env.id)));

	env.rcpt[0].state = RCPT_DELIVERED;
	env.rcpt[0].attempts = 1;
	env.rcpt[1].state = RCPT_FAILED;
	env.rcpt[1].attempts = 3;
	env.rcpt[1].last_reply = xstrdup(reply);
	env.rcpt[2].attempts = 2;
	env.rcpt[2].next_attempt = 1900000000;
	assert_int_equal(queue_update(f->q, &env), Q_OK);
	assert_true(exists(path_of(f, "state", env.id)));
	assert_int_equal(count_dir(f, "state"), 1); /* no temp left behind */

	assert_int_equal(queue_load(f->q, env.id, &got, NULL), Q_OK);
	assert_int_equal(got.nrcpt, 3);
	assert_int_equal(got.rcpt[0].state, RCPT_DELIVERED);
	assert_int_equal(got.rcpt[0].attempts, 1);
	assert_null(got.rcpt[0].last_reply);
	assert_int_equal(got.rcpt[1].state, RCPT_FAILED);
	assert_int_equal(got.rcpt[1].attempts, 3);
	assert_string_equal(got.rcpt[1].last_reply, reply);
	assert_int_equal(got.rcpt[2].state, RCPT_PENDING);
	assert_int_equal(got.rcpt[2].attempts, 2);
	assert_int_equal(got.rcpt[2].next_attempt, 1900000000);
	assert_string_equal(got.rcpt[2].addr, "carol with space@example.org");

	/* A second update replaces the first. */
	got.rcpt[2].state = RCPT_DELIVERED;
	assert_int_equal(queue_update(f->q, &got), Q_OK);
	q_env_free(&got);
	assert_int_equal(queue_load(f->q, env.id, &got, NULL), Q_OK);
	assert_int_equal(got.rcpt[2].state, RCPT_DELIVERED);
	assert_string_equal(got.rcpt[1].last_reply, reply);
	q_env_free(&got);
	q_env_free(&env);
}

static void test_remove(void **state)
{
	struct fixture *f = *state;
	struct q_env env;
	char id[QUEUE_ID_MAX], keep[QUEUE_ID_MAX];

	commit_text(f, "one\r\n", id);
	commit_text(f, "two\r\n", keep);
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_OK);
	env.rcpt[0].state = RCPT_DELIVERED;
	assert_int_equal(queue_update(f->q, &env), Q_OK);
	q_env_free(&env);

	assert_int_equal(queue_remove(f->q, id), Q_OK);
	assert_false(exists(path_of(f, "queue", id)));
	assert_false(exists(path_of(f, "state", id)));
	assert_true(exists(path_of(f, "queue", keep)));
	errno = 0;
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_PERMFAIL);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(queue_remove(f->q, id), Q_PERMFAIL);
	assert_int_equal(count_dir(f, "corrupt"), 0); /* missing is not damaged */
}

/* queue_update_later: the new state is read back at once, is on disk after
 * queue_close (which waits for the writer), and a removal while it is
 * pending leaves no state file behind. */
static void test_update_later(void **state)
{
	struct fixture *f = *state;
	struct q_env env, got;
	char id[QUEUE_ID_MAX], gone[QUEUE_ID_MAX];
	struct buf b = BUF_INIT;

	commit_text(f, "one\r\n", id);
	commit_text(f, "two\r\n", gone);
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_OK);
	env.rcpt[0].attempts = 4;
	env.rcpt[0].next_attempt = 1900000000;
	assert_int_equal(queue_update_later(f->q, &env), Q_OK);
	assert_int_equal(queue_load_envelope(f->q, id, &got), Q_OK);
	assert_int_equal(got.rcpt[0].attempts, 4);
	q_env_free(&got);
	/* Later updates win over earlier ones, also through queue_update. */
	env.rcpt[0].attempts = 5;
	assert_int_equal(queue_update(f->q, &env), Q_OK);
	q_env_free(&env);
	assert_int_equal(queue_load(f->q, gone, &env, NULL), Q_OK);
	env.rcpt[0].state = RCPT_DELIVERED;
	assert_int_equal(queue_update_later(f->q, &env), Q_OK);
	assert_int_equal(queue_remove(f->q, gone), Q_OK);
	q_env_free(&env);

	queue_close(f->q);
	f->q = queue_open(f->dir);
	assert_non_null(f->q);
	assert_false(exists(path_of(f, "state", gone)));
	read_file(path_of(f, "state", id), &b);
	assert_non_null(strstr(buf_cstr(&b), "rcpt 0 pending 5 1900000000 "));
	assert_int_equal(count_dir(f, "state"), 1); /* no temp file left */
	buf_free(&b);
}

struct scan_acc {
	char ids[64][QUEUE_ID_MAX];
	int n, stop_at;
};

static int scan_cb(const char *id, void *arg)
{
	struct scan_acc *a = arg;

	strcpy(a->ids[a->n++], id);
	return a->n == a->stop_at;
}

static void test_scan_order_and_stop(void **state)
{
	struct fixture *f = *state;
	char ids[40][QUEUE_ID_MAX];
	struct scan_acc acc = {.n = 0, .stop_at = 0};

	for (int i = 0; i < 40; i++)
		commit_text(f, "x\r\n", ids[i]);
	/* Foreign names in queue/ are not listed. */
	write_file(path_of(f, "queue", "README"), "x", 1);
	assert_int_equal(queue_scan(f->q, scan_cb, &acc), Q_OK);
	assert_int_equal(acc.n, 40);
	for (int i = 0; i < 40; i++)
		assert_string_equal(acc.ids[i], ids[i]);

	memset(&acc, 0, sizeof(acc));
	acc.stop_at = 5;
	assert_int_equal(queue_scan(f->q, scan_cb, &acc), Q_OK);
	assert_int_equal(acc.n, 5);
}

/* A caller-drawn id is used; an id already queued gets a fresh one (EEXIST). */
static void test_caller_id_and_collision(void **state)
{
	struct fixture *f = *state;
	struct q_env env;
	struct iovec iov = {"x\r\n", 3};
	char mine[QUEUE_ID_MAX], first[QUEUE_ID_MAX];

	queue_new_id(mine);
	env_basic(&env, "a@b");
	strcpy(env.id, mine);
	assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_OK);
	assert_string_equal(env.id, mine);
	strcpy(first, env.id);
	q_env_free(&env);

	env_basic(&env, "c@d");
	strcpy(env.id, first);
	assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_OK);
	assert_string_not_equal(env.id, first);
	assert_int_equal(count_dir(f, "queue"), 2);
	assert_int_equal(count_dir(f, "tmp"), 0);
	q_env_free(&env);
	/* The first message is untouched. */
	assert_int_equal(queue_load(f->q, first, &env, NULL), Q_OK);
	assert_string_equal(env.sender, "a@b");
	q_env_free(&env);
}

static void truncate_to(const char *path, off_t len)
{
	assert_int_equal(truncate(path, len), 0);
}

static void test_truncated_files_moved_to_corrupt(void **state)
{
	struct fixture *f = *state;
	struct buf file = BUF_INIT, moved = BUF_INIT, before[12];
	char good[QUEUE_ID_MAX], ids[12][QUEUE_ID_MAX];
	const char *text = "Subject: t\r\n\r\nsome body text\r\n";
	size_t full, offs[12];
	int n_ok = -1, n_bad = -1, k = 0;

	commit_text(f, text, good);
	read_file(path_of(f, "queue", good), &file);
	full = file.len;
	const char *content = memmem(file.data, file.len, "Subject", 7);
	size_t hdr = (size_t)(content - file.data);
	size_t cut[] = {
	    0, 1, 10, 16, 17, 40, hdr - 1, hdr, hdr + 5, hdr + strlen(text), full - 4, full - 1};

	for (k = 0; k < 12; k++) {
		commit_text(f, text, ids[k]);
		offs[k] = cut[k];
		truncate_to(path_of(f, "queue", ids[k]), (off_t)offs[k]);
		buf_init(&before[k]);
		read_file(path_of(f, "queue", ids[k]), &before[k]);
	}
	assert_int_equal(queue_recover(f->q, &n_ok, &n_bad), Q_OK);
	assert_int_equal(n_ok, 1);
	assert_int_equal(n_bad, 12);
	assert_int_equal(count_dir(f, "queue"), 1);
	assert_true(exists(path_of(f, "queue", good)));
	for (k = 0; k < 12; k++) {
		/* Never deleted: the same bytes are in corrupt/. */
		assert_false(exists(path_of(f, "queue", ids[k])));
		read_file(path_of(f, "corrupt", ids[k]), &moved);
		assert_int_equal(moved.len, offs[k]);
		assert_memory_equal(moved.data, before[k].data, offs[k]);
		buf_free(&before[k]);
		assert_int_equal(count_events(f, EV_QUEUE_CORRUPT, ids[k]), 1);
	}
	/* A second recovery finds nothing more to do. */
	assert_int_equal(queue_recover(f->q, &n_ok, &n_bad), Q_OK);
	assert_int_equal(n_ok, 1);
	assert_int_equal(n_bad, 0);
	buf_free(&file);
	buf_free(&moved);
}

/* Turns "Hello" in message id's content into "hEllo": same size, only the
 * CRC can tell. */
static void flip_content_byte(struct fixture *f, const char *id)
{
	struct buf file = BUF_INIT;
	char *w;

	read_file(path_of(f, "queue", id), &file);
	w = memmem(file.data, file.len, "Hello", 5);
	assert_non_null(w);
	w[1] ^= 0x20;
	write_file(path_of(f, "queue", id), file.data, file.len);
	buf_free(&file);
}

/* A full load of id refuses it for its checksum and moves it to corrupt/. */
static void assert_checksum_refused(struct fixture *f, const char *id)
{
	struct q_env env;
	struct buf content = BUF_INIT;

	assert_int_equal(queue_load(f->q, id, &env, &content), Q_PERMFAIL);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(content.len, 0);
	assert_false(exists(path_of(f, "queue", id)));
	assert_true(exists(path_of(f, "corrupt", id)));
	assert_int_equal(count_events(f, EV_QUEUE_CORRUPT, "checksum mismatch"), 1);
	buf_free(&content);
}

static void test_flipped_byte_detected_on_load(void **state)
{
	struct fixture *f = *state;
	char id[QUEUE_ID_MAX];

	commit_text(f, "Subject: flip\r\n\r\nHello world\r\n", id);
	flip_content_byte(f, id);
	assert_checksum_refused(f, id);
}

/* The envelope-only load does not read the content: a flipped content byte
 * passes it (with the state merged), and the full load that delivery needs
 * before using the content still refuses the file and moves it aside. */
static void test_envelope_load_then_content_detects_damage(void **state)
{
	struct fixture *f = *state;
	struct q_env env;
	char id[QUEUE_ID_MAX];
	const char *text = "Subject: flip\r\n\r\nHello world\r\n";

	commit_text(f, text, id);
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_OK);
	env.rcpt[0].attempts = 3;
	env.rcpt[0].next_attempt = 1234;
	assert_int_equal(queue_update(f->q, &env), Q_OK);
	q_env_free(&env);
	flip_content_byte(f, id);

	assert_int_equal(queue_load_envelope(f->q, id, &env), Q_OK);
	assert_string_equal(env.id, id);
	assert_string_equal(env.sender, "sender@example.net");
	assert_int_equal(env.size, strlen(text));
	assert_int_equal(env.nrcpt, 2);
	assert_int_equal(env.rcpt[0].attempts, 3);
	assert_int_equal(env.rcpt[0].next_attempt, 1234);
	q_env_free(&env);
	assert_true(exists(path_of(f, "queue", id)));

	assert_checksum_refused(f, id);
	assert_int_equal(queue_load_envelope(f->q, id, &env), Q_PERMFAIL);
}

/* What the envelope-only load does see: a file cut short (its length no
 * longer fits the envelope) and a bad header; an envelope longer than the
 * first read is read on until its end. */
static void test_envelope_load_truncated_and_long(void **state)
{
	struct fixture *f = *state;
	struct buf file = BUF_INIT;
	struct iovec iov = {(void *)"x\r\n", 3};
	struct q_env env;
	char cut[QUEUE_ID_MAX], magic[QUEUE_ID_MAX], rcpt[64];

	commit_text(f, "Subject: cut\r\n\r\nbody\r\n", cut);
	read_file(path_of(f, "queue", cut), &file);
	write_file(path_of(f, "queue", cut), file.data, file.len - 1);
	assert_int_equal(queue_load_envelope(f->q, cut, &env), Q_PERMFAIL);
	assert_int_equal(errno, EBADMSG);
	assert_true(exists(path_of(f, "corrupt", cut)));
	assert_int_equal(count_events(f, EV_QUEUE_CORRUPT, "does not match its envelope"), 1);

	commit_text(f, "Subject: magic\r\n\r\nbody\r\n", magic);
	read_file(path_of(f, "queue", magic), &file);
	file.data[0] = 'X';
	write_file(path_of(f, "queue", magic), file.data, file.len);
	assert_int_equal(queue_load_envelope(f->q, magic, &env), Q_PERMFAIL);
	assert_true(exists(path_of(f, "corrupt", magic)));

	memset(&env, 0, sizeof(env));
	env.sender = xstrdup("sender@example.net");
	env.client = xstrdup("192.0.2.7");
	for (int i = 0; i < 400; i++) { /* about 14 KB of envelope */
		snprintf(rcpt, sizeof(rcpt), "recipient-number-%04d@example.org", i);
		q_env_add_rcpt(&env, rcpt);
	}
	assert_int_equal(queue_commit(f->q, &env, &iov, 1), Q_OK);
	char id[QUEUE_ID_MAX];
	strcpy(id, env.id);
	q_env_free(&env);
	assert_int_equal(queue_load_envelope(f->q, id, &env), Q_OK);
	assert_int_equal(env.nrcpt, 400);
	assert_string_equal(env.rcpt[399].addr, "recipient-number-0399@example.org");
	assert_int_equal(env.size, 3);
	q_env_free(&env);
	buf_free(&file);
}

static void test_garbage_version_and_foreign_names(void **state)
{
	struct fixture *f = *state;
	char g[QUEUE_ID_MAX], v[QUEUE_ID_MAX], e[QUEUE_ID_MAX], good[QUEUE_ID_MAX];
	struct buf file = BUF_INIT;
	int n_ok, n_bad;

	commit_text(f, "ok\r\n", good);
	queue_new_id(g);
	write_file(path_of(f, "queue", g),
		   "\x7f"
		   "ELF garbage\n\0\0\0",
		   16);
	commit_text(f, "v\r\n", v);
	read_file(path_of(f, "queue", v), &file);
	file.data[15] = '2'; /* "DIALMAIL-QUEUE 2" */
	write_file(path_of(f, "queue", v), file.data, file.len);
	queue_new_id(e);
	write_file(path_of(f, "queue", e), "", 0);
	write_file(path_of(f, "queue", "junk.txt"), "hello", 5);
	/* corrupt/ already holds a file of that name: it must not be replaced. */
	write_file(path_of(f, "corrupt", "junk.txt"), "older", 5);

	assert_int_equal(queue_recover(f->q, &n_ok, &n_bad), Q_OK);
	assert_int_equal(n_ok, 1);
	assert_int_equal(n_bad, 4);
	assert_int_equal(count_dir(f, "queue"), 1);
	assert_true(exists(path_of(f, "corrupt", g)));
	assert_true(exists(path_of(f, "corrupt", v)));
	assert_true(exists(path_of(f, "corrupt", e)));
	read_file(path_of(f, "corrupt", "junk.txt"), &file);
	assert_string_equal(file.data, "older");
	read_file(path_of(f, "corrupt", "junk.txt.1"), &file);
	assert_string_equal(file.data, "hello");
	assert_int_equal(count_events(f, EV_QUEUE_CORRUPT, "bad magic"), 1);
	assert_int_equal(count_events(f, EV_QUEUE_CORRUPT, "unsupported version"), 1);
	assert_int_equal(count_events(f, EV_QUEUE_CORRUPT, "empty file"), 1);
	assert_int_equal(count_events(f, EV_QUEUE_CORRUPT, "junk.txt"), 1);
	buf_free(&file);
}

/* Content altered along with a matching length but a wrong size record, or
 * trailing bytes after END: both are damage, not mail. */
static void test_size_mismatch_and_trailing_data(void **state)
{
	struct fixture *f = *state;
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX];
	struct buf file = BUF_INIT;
	struct q_env env;

	commit_text(f, "abc\r\n", a);
	read_file(path_of(f, "queue", a), &file);
	char *s = memmem(file.data, file.len, "size 5\n", 7);
	s[5] = '4';
	write_file(path_of(f, "queue", a), file.data, file.len);
	assert_int_equal(queue_load(f->q, a, &env, NULL), Q_PERMFAIL);
	assert_true(exists(path_of(f, "corrupt", a)));

	commit_text(f, "abc\r\n", b);
	read_file(path_of(f, "queue", b), &file);
	buf_puts(&file, "more");
	write_file(path_of(f, "queue", b), file.data, file.len);
	assert_int_equal(queue_load(f->q, b, &env, NULL), Q_PERMFAIL);
	assert_int_equal(count_events(f, EV_QUEUE_CORRUPT, "trailing data"), 1);
	buf_free(&file);
}

static void test_damaged_state_ignored(void **state)
{
	struct fixture *f = *state;
	struct q_env env;
	struct buf content = BUF_INIT;
	char id[QUEUE_ID_MAX], name[64];
	const char *bad[] = {"garbage",
			     "DIALMAIL-STATE 1\nrcpt 0 delivered 1 0 alice@example.org\n",
			     "DIALMAIL-STATE 1\nrcpt 0 delivered 1 0 mallory@example.org\n"
			     "rcpt 1 delivered 1 0 bob@example.org\nEND 2\n"};

	commit_text(f, "body\r\n", id);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path_of(f, "state", id), bad[i], strlen(bad[i]));
		buf_reset(&content);
		assert_int_equal(queue_load(f->q, id, &env, &content), Q_OK);
		assert_int_equal(env.nrcpt, 2);
		assert_int_equal(env.rcpt[0].state, RCPT_PENDING);
		assert_int_equal(env.rcpt[1].state, RCPT_PENDING);
		assert_string_equal(content.data, "body\r\n");
		q_env_free(&env);
		assert_true(exists(path_of(f, "queue", id)));
		assert_false(exists(path_of(f, "state", id)));
	}
	snprintf(name, sizeof(name), "%s.state", id);
	assert_true(exists(path_of(f, "corrupt", name)));
	assert_int_equal(count_events(f, EV_QUEUE_CORRUPT, "State file"), 3);
	assert_int_equal(count_dir(f, "corrupt"), 3);
	buf_free(&content);
}

static void test_recover_tmp_and_orphan_state(void **state)
{
	struct fixture *f = *state;
	char id[QUEUE_ID_MAX], orphan[QUEUE_ID_MAX], stale[QUEUE_ID_MAX], name[64];
	struct q_env env;
	int n_ok, n_bad;

	commit_text(f, "kept\r\n", id);
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_OK);
	env.rcpt[1].state = RCPT_DELIVERED;
	assert_int_equal(queue_update(f->q, &env), Q_OK);
	q_env_free(&env);

	queue_new_id(stale);
	write_file(path_of(f, "tmp", stale), "DIALMAIL-QUEUE 1\nid", 19);
	write_file(path_of(f, "tmp", "other"), "x", 1);
	queue_new_id(orphan);
	write_file(path_of(f, "state", orphan), "DIALMAIL-STATE 1\n", 17);
	snprintf(name, sizeof(name), "%s.tmp.99", id);
	write_file(path_of(f, "state", name), "partial", 7);

	assert_int_equal(queue_recover(f->q, &n_ok, &n_bad), Q_OK);
	assert_int_equal(n_ok, 1);
	assert_int_equal(n_bad, 0);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "state"), 1);
	assert_false(exists(path_of(f, "queue", stale))); /* never acknowledged */
	assert_int_equal(queue_load(f->q, id, &env, NULL), Q_OK);
	assert_int_equal(env.rcpt[1].state, RCPT_DELIVERED);
	q_env_free(&env);
}

static void test_dirs_created_0700(void **state)
{
	struct fixture *f = *state;
	const char *subs[] = {"queue", "tmp", "state", "corrupt"};
	struct stat st;

	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(stat(path_of(f, subs[i], "."), &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	assert_string_equal(queue_dir(f->q), f->dir);
}

/* A real full disk: a 64 KiB tmpfs. Skipped where mounting is not allowed. */
static void test_enospc_tempfail_leaves_nothing(void **state)
{
	char dir[TEST_TMP_MAX];
	struct fixture f2;
	struct q_env env;
	size_t big = 200 * 1024;
	char *content = xmalloc(big);
	struct iovec iov = {content, big};

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "test_queue_full"));
	if (mount("tmpfs", dir, "tmpfs", 0, "size=64k") < 0) {
		rmdir(dir);
		free(content);
		skip();
	}
	memset(content, 'x', big);
	snprintf(f2.dir, sizeof(f2.dir), "%s", dir);
	f2.q = queue_open(dir);
	assert_non_null(f2.q);
	env_basic(&env, "a@b");
	errno = 0;
	assert_int_equal(queue_commit(f2.q, &env, &iov, 1), Q_TEMPFAIL);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(count_dir(&f2, "queue"), 0);
	assert_int_equal(count_dir(&f2, "tmp"), 0);
	q_env_free(&env);
	/* Space for a small message is still there: accepted again. */
	env_basic(&env, "a@b");
	iov.iov_len = 1000;
	assert_int_equal(queue_commit(f2.q, &env, &iov, 1), Q_OK);
	assert_int_equal(count_dir(&f2, "queue"), 1);
	q_env_free(&env);
	queue_close(f2.q);
	assert_int_equal(umount2(dir, MNT_DETACH), 0);
	rmdir(dir);
	free(content);
}

/* ------------------------------------------------------------ group commit */

/* Stages one basic message with content text; returns queue_batch_add's status. */
static int batch_add_text(struct q_batch *b, struct q_env *env, const char *sender,
			  const char *text, size_t len)
{
	struct iovec iov = {(void *)text, len};

	env_basic(env, sender);
	return queue_batch_add(b, env, &iov, 1);
}

/* Loads id and checks its sender and content byte for byte. */
static void assert_queued(struct fixture *f, const char *id, const char *sender, const char *text)
{
	struct q_env env;
	struct buf content = BUF_INIT;

	assert_int_equal(queue_load(f->q, id, &env, &content), Q_OK);
	assert_string_equal(env.sender, sender);
	assert_int_equal(content.len, strlen(text));
	assert_memory_equal(content.data, text, content.len);
	q_env_free(&env);
	buf_free(&content);
}

static void test_batch_commit_many(void **state)
{
	struct fixture *f = *state;
	struct q_batch *b = queue_batch_new(f->q);
	struct q_env env[5];
	struct q_result res[5];
	char text[5][64], sender[5][32];

	for (int i = 0; i < 5; i++) {
		snprintf(text[i], sizeof(text[i]), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
		snprintf(sender[i], sizeof(sender[i]), "s%d@example.net", i);
		assert_int_equal(batch_add_text(b, &env[i], sender[i], text[i], strlen(text[i])),
				 Q_OK);
		assert_int_equal(queue_batch_count(b), (size_t)i + 1);
		assert_true(queue_id_valid(env[i].id));
		for (int k = 0; k < i; k++)
			assert_string_not_equal(env[i].id, env[k].id);
	}
	/* Staged, not acknowledged: nothing in queue/ yet. */
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(count_dir(f, "tmp"), 5);
	assert_int_equal(queue_batch_commit(b, res), 5);
	assert_int_equal(queue_batch_count(b), 0);
	assert_int_equal(count_dir(f, "queue"), 5);
	assert_int_equal(count_dir(f, "tmp"), 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(res[i].status, Q_OK);
		assert_queued(f, env[i].id, sender[i], text[i]);
		q_env_free(&env[i]);
	}
	/* The batch is reusable. */
	assert_int_equal(batch_add_text(b, &env[0], "again@x", "a\r\n", 3), Q_OK);
	assert_int_equal(queue_batch_commit(b, res), 1);
	assert_queued(f, env[0].id, "again@x", "a\r\n");
	q_env_free(&env[0]);
	queue_batch_free(b);
	assert_int_equal(count_dir(f, "queue"), 6);
}

/* ------------------------------------------------------ streamed messages */

/* A message written in pieces (one of them larger than the stream's
 * buffer) reads back byte for byte, with the same file a one-piece commit
 * writes except for the zero-padded size; nothing is in queue/ before the
 * commit. */
static void test_stream_pieces_read_back(void **state)
{
	struct fixture *f = *state;
	struct q_batch *b = queue_batch_new(f->q);
	struct q_env env;
	struct q_result res;
	struct q_stream *st;
	struct buf expect = BUF_INIT, file = BUF_INIT;
	char size_rec[64];

	env_basic(&env, "stream@example.net");
	st = queue_stream_open(f->q, &env);
	assert_non_null(st);
	assert_true(queue_id_valid(env.id));
	assert_string_equal(queue_stream_id(st), env.id);
	buf_puts(&expect, "Subject: streamed\r\n\r\n");
	assert_int_equal(queue_stream_write(st, expect.data, expect.len), 0);
	for (int i = 0; i < 3000; i++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "line %04d of the streamed body\r\n", i);
		buf_append(&expect, line, (size_t)n);
		assert_int_equal(queue_stream_write(st, line, (size_t)n), 0);
	}
	{ /* one write larger than the buffer goes straight to the file */
		size_t big = 100 * 1024, at = expect.len;
		buf_reserve(&expect, big);
		memset(expect.data + at, 'z', big);
		expect.len += big;
		expect.data[expect.len] = '\0';
		assert_int_equal(queue_stream_write(st, expect.data + at, big), 0);
	}
	assert_int_equal(queue_stream_size(st), expect.len);
	assert_int_equal(count_dir(f, "tmp"), 1);
	assert_int_equal(queue_batch_add_stream(b, st, &env), Q_OK);
	assert_int_equal(env.size, expect.len);
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(queue_batch_commit(b, &res), 1);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_queued(f, env.id, "stream@example.net", buf_cstr(&expect));
	read_file(path_of(f, "queue", env.id), &file);
	snprintf(size_rec, sizeof(size_rec), "\nsize %020zu\n", expect.len);
	assert_non_null(strstr(file.data, size_rec));
	q_env_free(&env);
	queue_batch_free(b);
	buf_free(&expect);
	buf_free(&file);
}

/* Given up (a client gone, a refused message): the temp file goes, and an
 * envelope the queue would refuse never gets one. */
static void test_stream_abort_and_refused_envelope(void **state)
{
	struct fixture *f = *state;
	struct q_env env;
	struct q_stream *st;

	env_basic(&env, "a@b");
	st = queue_stream_open(f->q, &env);
	assert_non_null(st);
	assert_int_equal(queue_stream_write(st, "half a message", 14), 0);
	assert_int_equal(count_dir(f, "tmp"), 1);
	queue_stream_abort(st);
	queue_stream_abort(NULL);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "queue"), 0);
	q_env_free(&env);

	env_basic(&env, "bad\r\nrcpt x@y");
	errno = 0;
	assert_null(queue_stream_open(f->q, &env));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(count_dir(f, "tmp"), 0);
	q_env_free(&env);
}

/* The disk fills in the middle of a stream: every later write fails with
 * ENOSPC, the commit reports it, and nothing is left in tmp/ or queue/. */
static void test_stream_enospc(void **state)
{
	char dir[TEST_TMP_MAX];
	struct fixture f2;
	struct q_batch *b;
	struct q_env env;
	struct q_stream *st;
	char chunk[4096];
	int failed = 0;

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "test_queue_stream_full"));
	if (mount("tmpfs", dir, "tmpfs", 0, "size=64k") < 0) {
		rmdir(dir);
		skip();
	}
	snprintf(f2.dir, sizeof(f2.dir), "%s", dir);
	f2.q = queue_open(dir);
	assert_non_null(f2.q);
	b = queue_batch_new(f2.q);
	env_basic(&env, "a@b");
	st = queue_stream_open(f2.q, &env);
	assert_non_null(st);
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 64 && !failed; i++)
		failed = queue_stream_write(st, chunk, sizeof(chunk)) < 0;
	assert_true(failed);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(queue_stream_write(st, "x", 1), -1);
	errno = 0;
	assert_int_equal(queue_batch_add_stream(b, st, &env), Q_TEMPFAIL);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(count_dir(&f2, "tmp"), 0);
	assert_int_equal(count_dir(&f2, "queue"), 0);
	q_env_free(&env);
	queue_batch_free(b);
	queue_close(f2.q);
	assert_int_equal(umount2(dir, MNT_DETACH), 0);
	rmdir(dir);
}

/* A name taken in queue/ between staging and commit: that message alone
 * fails, the other file there is untouched, nothing is left in tmp/. */
static void test_batch_link_failure_reported(void **state)
{
	struct fixture *f = *state;
	struct q_batch *b = queue_batch_new(f->q);
	struct q_env a, c;
	struct q_result res[2];
	struct buf file = BUF_INIT;
	char taken[QUEUE_ID_MAX];

	assert_int_equal(batch_add_text(b, &a, "a@x", "one\r\n", 5), Q_OK);
	assert_int_equal(batch_add_text(b, &c, "c@x", "two\r\n", 5), Q_OK);
	strcpy(taken, c.id);
	write_file(path_of(f, "queue", taken), "not ours", 8);

	assert_int_equal(queue_batch_commit(b, res), 1);
	assert_int_equal(res[0].status, Q_OK);
	assert_int_equal(res[1].status, Q_TEMPFAIL);
	assert_int_equal(res[1].err, EEXIST);
	assert_queued(f, a.id, "a@x", "one\r\n");
	read_file(path_of(f, "queue", taken), &file);
	assert_int_equal(file.len, 8);
	assert_memory_equal(file.data, "not ours", 8);
	buf_free(&file);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "queue"), 2);
	q_env_free(&a);
	q_env_free(&c);
	queue_batch_free(b);
}

/* Freeing a batch that was never committed removes its files from tmp/. */
static void test_batch_free_drops_staged(void **state)
{
	struct fixture *f = *state;
	struct q_batch *b = queue_batch_new(f->q);
	struct q_env env;

	assert_int_equal(batch_add_text(b, &env, "a@x", "x\r\n", 3), Q_OK);
	q_env_free(&env);
	assert_int_equal(count_dir(f, "tmp"), 1);
	queue_batch_free(b);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "queue"), 0);
}

/* A bad envelope is refused at staging and never takes a slot. */
static void test_batch_refuses_bad_envelope(void **state)
{
	struct fixture *f = *state;
	struct q_batch *b = queue_batch_new(f->q);
	struct q_env env;
	struct iovec iov = {"x\r\n", 3};

	env_basic(&env, "evil\r\n@x");
	assert_int_equal(queue_batch_add(b, &env, &iov, 1), Q_PERMFAIL);
	assert_int_equal(queue_batch_count(b), 0);
	assert_int_equal(count_dir(f, "tmp"), 0);
	q_env_free(&env);
	queue_batch_free(b);
}

/* Mixed outcomes on a real full disk (64 KiB tmpfs): the message that does
 * not fit fails at staging with ENOSPC and leaves nothing; the others in
 * the same batch are committed. Skipped where mounting is not allowed. */
static void test_batch_enospc_mixed(void **state)
{
	char dir[TEST_TMP_MAX];
	struct fixture f2;
	struct q_env env[3];
	struct q_result res[3];
	size_t big = 200 * 1024;
	char *content = xmalloc(big);
	struct q_batch *b;

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "test_queue_bfull"));
	if (mount("tmpfs", dir, "tmpfs", 0, "size=64k") < 0) {
		rmdir(dir);
		free(content);
		skip();
	}
	memset(content, 'x', big);
	snprintf(f2.dir, sizeof(f2.dir), "%s", dir);
	f2.q = queue_open(dir);
	assert_non_null(f2.q);
	b = queue_batch_new(f2.q);
	assert_int_equal(batch_add_text(b, &env[0], "a@x", content, 1000), Q_OK);
	errno = 0;
	assert_int_equal(batch_add_text(b, &env[1], "b@x", content, big), Q_TEMPFAIL);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(batch_add_text(b, &env[2], "c@x", content, 2000), Q_OK);
	assert_int_equal(queue_batch_count(b), 2);
	assert_int_equal(count_dir(&f2, "tmp"), 2);
	assert_int_equal(queue_batch_commit(b, res), 2);
	assert_int_equal(res[0].status, Q_OK);
	assert_int_equal(res[1].status, Q_OK);
	assert_int_equal(count_dir(&f2, "queue"), 2);
	assert_int_equal(count_dir(&f2, "tmp"), 0);
	content[2000] = '\0';
	assert_queued(&f2, env[2].id, "c@x", content);
	assert_false(exists(path_of(&f2, "queue", env[1].id)));
	for (int i = 0; i < 3; i++)
		q_env_free(&env[i]);
	queue_batch_free(b);
	queue_close(f2.q);
	assert_int_equal(umount2(dir, MNT_DETACH), 0);
	rmdir(dir);
	free(content);
}

/* ------------------------------------------------------ committer thread */

/* 1 if fd is readable right now (after waiting up to ms). */
static int readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* The next batch is staged while one is in flight; each is handed over in
 * turn, its completion shows on the fd, and every message is queued. */
static void test_committer_two_batches(void **state)
{
	struct fixture *f = *state;
	struct q_committer *c = queue_committer_new(f->q);
	struct q_batch *a = queue_batch_new(f->q), *b = queue_batch_new(f->q);
	struct q_env ea[3], eb[2];
	struct q_result ra[3], rb[2];
	char text[5][64], sender[5][32];

	assert_non_null(c);
	assert_null(queue_committer_done(c, 0)); /* nothing handed over */
	assert_null(queue_committer_done(c, 1));
	assert_false(queue_committer_busy(c));
	for (int i = 0; i < 5; i++) {
		snprintf(text[i], sizeof(text[i]), "Subject: %d\r\n\r\nthreaded %d\r\n", i, i);
		snprintf(sender[i], sizeof(sender[i]), "t%d@example.net", i);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(batch_add_text(a, &ea[i], sender[i], text[i], strlen(text[i])),
				 Q_OK);
	assert_int_equal(queue_committer_start(c, a, ra), 0);
	assert_true(queue_committer_busy(c));
	/* Staging goes on meanwhile; a second hand-over must wait. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    batch_add_text(b, &eb[i], sender[3 + i], text[3 + i], strlen(text[3 + i])),
		    Q_OK);
	errno = 0;
	assert_int_equal(queue_committer_start(c, b, rb), -1);
	assert_int_equal(errno, EBUSY);
	assert_true(readable(queue_committer_fd(c), 10000));
	assert_ptr_equal(queue_committer_done(c, 0), a);
	assert_false(queue_committer_busy(c));
	assert_false(readable(queue_committer_fd(c), 0)); /* consumed */
	assert_int_equal(queue_batch_count(a), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ra[i].status, Q_OK);
		assert_queued(f, ea[i].id, sender[i], text[i]);
	}
	/* b's files are still only staged. */
	assert_int_equal(count_dir(f, "tmp"), 2);
	assert_int_equal(queue_committer_start(c, b, rb), 0);
	assert_ptr_equal(queue_committer_done(c, 1), b);
	assert_false(readable(queue_committer_fd(c), 0));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(rb[i].status, Q_OK);
		assert_queued(f, eb[i].id, sender[3 + i], text[3 + i]);
	}
	assert_int_equal(count_dir(f, "queue"), 5);
	assert_int_equal(count_dir(f, "tmp"), 0);
	for (int i = 0; i < 3; i++)
		q_env_free(&ea[i]);
	for (int i = 0; i < 2; i++)
		q_env_free(&eb[i]);
	queue_committer_free(c);
	queue_batch_free(a);
	queue_batch_free(b);
}

/* A failure on the thread comes back per message, as without it. */
static void test_committer_link_failure(void **state)
{
	struct fixture *f = *state;
	struct q_committer *c = queue_committer_new(f->q);
	struct q_batch *b = queue_batch_new(f->q);
	struct q_env a, d;
	struct q_result res[2];

	assert_non_null(c);
	assert_int_equal(batch_add_text(b, &a, "a@x", "one\r\n", 5), Q_OK);
	assert_int_equal(batch_add_text(b, &d, "d@x", "two\r\n", 5), Q_OK);
	write_file(path_of(f, "queue", d.id), "not ours", 8);
	assert_int_equal(queue_committer_start(c, b, res), 0);
	assert_ptr_equal(queue_committer_done(c, 1), b);
	assert_int_equal(res[0].status, Q_OK);
	assert_int_equal(res[1].status, Q_TEMPFAIL);
	assert_int_equal(res[1].err, EEXIST);
	assert_queued(f, a.id, "a@x", "one\r\n");
	assert_int_equal(count_dir(f, "tmp"), 0);
	q_env_free(&a);
	q_env_free(&d);
	queue_committer_free(c);
	queue_batch_free(b);
}

/* Stopping the thread while a batch is in flight finishes that batch:
 * its messages end up whole in queue/, nothing stays in tmp/. */
static void test_committer_free_waits_for_batch(void **state)
{
	struct fixture *f = *state;
	struct q_committer *c = queue_committer_new(f->q);
	struct q_batch *b = queue_batch_new(f->q);
	struct q_env env[20];
	struct q_result res[20];

	assert_non_null(c);
	for (int i = 0; i < 20; i++)
		assert_int_equal(batch_add_text(b, &env[i], "w@x", "wait\r\n", 6), Q_OK);
	assert_int_equal(queue_committer_start(c, b, res), 0);
	queue_committer_free(c);
	assert_int_equal(queue_batch_count(b), 0);
	assert_int_equal(count_dir(f, "queue"), 20);
	assert_int_equal(count_dir(f, "tmp"), 0);
	for (int i = 0; i < 20; i++) {
		assert_queued(f, env[i].id, "w@x", "wait\r\n");
		q_env_free(&env[i]);
	}
	queue_batch_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32_known_value),
	    cmocka_unit_test(test_crc32_matches_bitwise),
	    cmocka_unit_test(test_ids_unique_sorted_shape),
	    cmocka_unit_test_setup_teardown(test_stream_pieces_read_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stream_abort_and_refused_envelope, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_stream_enospc, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_roundtrip_binary_no_final_crlf, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_content_and_helo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dsn_fields_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dsn_old_format_and_bad_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_ids_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crlf_in_envelope_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_message_id_newline_sanitised, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_update_reload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_later, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_order_and_stop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_caller_id_and_collision, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_files_moved_to_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flipped_byte_detected_on_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_envelope_load_then_content_detects_damage, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_envelope_load_truncated_and_long, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_version_and_foreign_names, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_size_mismatch_and_trailing_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_state_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recover_tmp_and_orphan_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dirs_created_0700, setup, teardown),
	    cmocka_unit_test(test_enospc_tempfail_leaves_nothing),
	    cmocka_unit_test_setup_teardown(test_batch_commit_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_link_failure_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_free_drops_staged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_refuses_bad_envelope, setup, teardown),
	    cmocka_unit_test(test_batch_enospc_mixed),
	    cmocka_unit_test_setup_teardown(test_committer_two_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_committer_link_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_committer_free_waits_for_batch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
