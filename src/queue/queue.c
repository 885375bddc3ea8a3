/* The durable queue on disk: commit (temp, fdatasync, link, fsync dir),
 * alone or as a group commit of many messages (optionally on one committer
 * thread), load, state updates, removal, scanning and start-up
 * recovery. Invariant: a name in queue/ is a whole, fsync'd file or it is moved to corrupt/;
 * nothing in queue/ is ever deleted except by queue_remove. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/event.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"
#include "queue/qindex.h"
#include "queue/queue.h"
#include "queue/queue_file.h"
#include "queue/retry.h"

enum { QD_QUEUE, QD_TMP, QD_STATE, QD_CORRUPT, QD_COUNT };
static const char *const queue_subdir[QD_COUNT] = {"queue", "tmp", "state", "corrupt"};

#define QUEUE_ID_LEN	  22
#define QUEUE_COMMIT_TRY  16	      /* fresh ids drawn on EEXIST before giving up */
#define QUEUE_WBUF_KEEP	  (4u << 20)  /* keep the write buffer if no larger */
#define QUEUE_HEAD_READ	  4096	      /* first read of an envelope-only load */
#define QUEUE_STREAM_BUF  (16u << 10) /* content buffered by a stream before a write */
#define QUEUE_STREAM_HEAD (16u << 10) /* start of a stream's content kept for its priority */

struct queue {
	char *dir;
	int fd[QD_COUNT];	 /* open directories: *at() calls avoid path walks */
	struct buf wbuf;	 /* file image, reused between commits */
	struct qindex *ix;	 /* the queue in memory, kept by commit, update, remove */
	struct q_recovery *rec;	 /* start-up recovery in slices, or NULL */
	struct q_states *states; /* queue_update_later's writer, or NULL */
};

static void queue_recover_free(struct queue *q);
static void queue_states_stop(struct queue *q);
static int queue_states_get(struct queue *q, const char *id, struct buf *out);
static void queue_states_forget(struct queue *q, const char *id);

const char *queue_dir(const struct queue *q)
{
	return q->dir;
}

struct queue *queue_open(const char *dir)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	int saved;

	q->dir = xstrdup(dir);
	q->ix = qindex_new();
	for (int i = 0; i < QD_COUNT; i++)
		q->fd[i] = -1;
	if (fs_mkdirs(dir, 0700) < 0)
		goto fail;
	for (int i = 0; i < QD_COUNT; i++) {
		char *path = xasprintf("%s/%s", dir, queue_subdir[i]);
		if (mkdir(path, 0700) == 0 || errno == EEXIST)
			q->fd[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		free(path);
		if (q->fd[i] < 0)
			goto fail;
	}
	return q;
fail:
	saved = errno;
	log_warn("queue: cannot open %s", dir);
	queue_close(q);
	errno = saved;
	return NULL;
}

void queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	queue_states_stop(q); /* what is pending is written first */
	for (int i = 0; i < QD_COUNT; i++)
		if (q->fd[i] >= 0)
			close(q->fd[i]);
	buf_free(&q->wbuf);
	queue_recover_free(q);
	qindex_free(q->ix);
	free(q->dir);
	free(q);
}

struct qindex *queue_index(struct queue *q)
{
	return q->ix;
}

/* The envelope fields the index keeps (those the listing shows), copied at staging time so the
 * index learns of the message when (and only if) its commit succeeds. */
static struct q_env *queue_env_brief(const struct q_env *env)
{
	struct q_env *b = xcalloc(1, sizeof(*b));

	memcpy(b->id, env->id, QUEUE_ID_MAX);
	b->created = env->created;
	b->size = env->size;
	b->sender = env->sender ? xstrdup(env->sender) : NULL;
	b->client = env->client ? xstrdup(env->client) : NULL;
	b->helo = env->helo ? xstrdup(env->helo) : NULL;
	b->message_id = env->message_id ? xstrdup(env->message_id) : NULL;
	for (size_t i = 0; i < env->nrcpt; i++)
		q_env_add_rcpt(b, env->rcpt[i].addr);
	return b;
}

void q_env_add_rcpt(struct q_env *env, const char *addr)
{
	struct q_rcpt *r;

	env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof(*env->rcpt));
	r = &env->rcpt[env->nrcpt++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(addr);
	r->state = RCPT_PENDING;
}

void q_env_free(struct q_env *env)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].last_reply);
		free(env->rcpt[i].orcpt);
	}
	free(env->rcpt);
	free(env->envid);
	free(env->sender);
	free(env->client);
	free(env->helo);
	free(env->message_id);
	memset(env, 0, sizeof(*env));
}

void queue_new_id(char out[QUEUE_ID_MAX])
{
	static int64_t last;
	static unsigned seq;
	int64_t us = clock_usec();

	/* Strictly increasing within a process, even if the clock steps back
	 * or is frozen by a test, so ids from one process always sort. */
	if (us <= last)
		us = last + 1;
	last = us;
	snprintf(out, QUEUE_ID_MAX, "%014" PRIX64 "%04X%04X",
		 (uint64_t)us & UINT64_C(0xFFFFFFFFFFFFFF), (unsigned)getpid() & 0xFFFF,
		 seq++ & 0xFFFF);
}

int queue_id_valid(const char *id)
{
	size_t i;

	if (id == NULL)
		return 0;
	for (i = 0; id[i]; i++)
		if (i >= QUEUE_ID_LEN ||
		    !((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
			return 0;
	return i == QUEUE_ID_LEN;
}

/* Refuses envelope values that would break the one-line records. */
static int queue_env_check(const struct q_env *env)
{
	if (!queue_file_value_ok(env->sender ? env->sender : "") ||
	    !queue_file_value_ok(env->client ? env->client : "") ||
	    (env->helo && !queue_file_value_ok(env->helo)) || env->nrcpt == 0 ||
	    (env->envid && !queue_file_value_ok(env->envid)) || env->ret < Q_RET_NONE ||
	    env->ret > Q_RET_HDRS)
		return -1;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (!queue_file_value_ok(env->rcpt[i].addr) || env->rcpt[i].addr[0] == '\0' ||
		    (env->rcpt[i].orcpt && !queue_file_value_ok(env->rcpt[i].orcpt)) ||
		    env->rcpt[i].notify > 15)
			return -1;
	return 0;
}

/* ----------------------------------------------------------- group commit */

/* One message written to tmp/<id>, not yet durable; fd stays open so the
 * commit can sync it without a path lookup. */
struct q_staged {
	char id[QUEUE_ID_MAX];
	int fd;
	const char *failed;  /* commit step that failed, for the log; or NULL */
	int tmp_left;	     /* linked, but the tmp/ name could not be removed */
	struct q_env *brief; /* for the index (queue_env_brief) */
	int prio;
};

/* Written by queue_batch_add and queue_batch_report on the owner's thread;
 * queue_batch_run (syscalls only) may run on the committer thread. */
struct q_batch {
	struct queue *q;
	struct q_staged *v;
	size_t n, cap;
	int dir_failed; /* the fsync of queue/ failed at the last commit */
};

struct q_batch *queue_batch_new(struct queue *q)
{
	struct q_batch *b = xcalloc(1, sizeof(*b));

	b->q = q;
	return b;
}

size_t queue_batch_count(const struct q_batch *b)
{
	return b->n;
}

/* Closes and removes a staged file that will not be committed. */
static void queue_staged_drop(struct q_batch *b, struct q_staged *st)
{
	int saved = errno;

	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
	unlinkat(b->q->fd[QD_TMP], st->id, 0);
	errno = saved;
}

/* The index learns of a committed message; the staged copy goes. */
static void queue_staged_indexed(struct q_batch *b, struct q_staged *st, int committed)
{
	if (st->brief == NULL)
		return;
	if (committed)
		qindex_put(b->q->ix, st->brief, st->prio);
	q_env_free(st->brief);
	free(st->brief);
	st->brief = NULL;
}

void queue_batch_free(struct q_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++) {
		queue_staged_drop(b, &b->v[i]);
		queue_staged_indexed(b, &b->v[i], 0);
	}
	free(b->v);
	free(b);
}

/* Checks env and fills in size, created and (unless valid already) id. */
static int queue_prepare(struct q_env *env, const struct iovec *iov, int iovcnt)
{
	if (queue_env_check(env) < 0) {
		errno = EINVAL;
		return Q_PERMFAIL;
	}
	env->size = 0;
	for (int i = 0; i < iovcnt; i++)
		env->size += iov[i].iov_len;
	if (env->created == 0)
		env->created = clock_now();
	/* A caller may have drawn the id already (for its Received: header). */
	if (!queue_id_valid(env->id))
		queue_new_id(env->id);
	return Q_OK;
}

/* Writes q->wbuf to a new tmp/<id>; the open fd, -1 (errno), or -2 when
 * the name is taken. The commit starts the write-back (on its thread). */
static int queue_stage_write(struct queue *q, const char *id)
{
	int fd = openat(q->fd[QD_TMP], id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return errno == EEXIST ? -2 : -1;
	if (fs_write_all(fd, q->wbuf.data, q->wbuf.len) < 0) {
		int saved = errno;
		close(fd);
		unlinkat(q->fd[QD_TMP], id, 0);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Formats and writes env + content to tmp/; a fresh id if the name is taken. */
static int queue_stage(struct queue *q, struct q_env *env, const struct iovec *iov, int iovcnt)
{
	int fd = -2;

	for (int tries = 0; tries < QUEUE_COMMIT_TRY && fd == -2; tries++) {
		if (tries > 0)
			queue_new_id(env->id);
		buf_reset(&q->wbuf);
		queue_file_format(&q->wbuf, env, iov, iovcnt);
		fd = queue_stage_write(q, env->id);
	}
	if (fd == -2)
		errno = EEXIST;
	if (q->wbuf.cap > QUEUE_WBUF_KEEP) {
		int saved = errno;
		buf_free(&q->wbuf);
		errno = saved;
	}
	return fd;
}

/* Appends a staged file (its tmp name and open fd) to the batch. */
static void queue_batch_push(struct q_batch *b, const struct q_env *env, int fd, int prio)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 16;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	memset(&b->v[b->n], 0, sizeof(b->v[b->n]));
	memcpy(b->v[b->n].id, env->id, QUEUE_ID_MAX);
	b->v[b->n].brief = queue_env_brief(env);
	b->v[b->n].prio = prio;
	b->v[b->n++].fd = fd;
}

int queue_batch_add(struct q_batch *b, struct q_env *env, const struct iovec *iov, int iovcnt)
{
	int rc = queue_prepare(env, iov, iovcnt), fd, saved;

	if (rc != Q_OK)
		return rc;
	fd = queue_stage(b->q, env, iov, iovcnt);
	if (fd < 0) {
		saved = errno;
		log_warn("queue: stage %s", env->id);
		errno = saved;
		return Q_TEMPFAIL;
	}
	queue_batch_push(b, env, fd, qindex_priority_iov(iov, iovcnt));
	return Q_OK;
}

/* ------------------------------------------------------ streamed messages */

/* A message written to tmp/<id> as its content arrives: the envelope first,
 * its size record zero-padded and filled in at the end (pwrite), then the
 * content through a small buffer. The checksum covers the envelope, which
 * is final only at the end: the content's CRC is kept apart and combined
 * with the envelope's then, so no byte is read back. */
struct q_stream {
	struct queue *q;
	char id[QUEUE_ID_MAX];
	int fd;
	int err;	     /* errno of the first failed write, 0 while all is well */
	struct buf envelope; /* the envelope records as written (size not yet) */
	struct buf wbuf;     /* content not yet written */
	uint64_t size;	     /* content octets taken */
	uint32_t crc;	     /* CRC-32 of the content */
	struct buf head;     /* the first QUEUE_STREAM_HEAD octets, for the priority */
	int prio;	     /* from head, once it is full; -1 before */
};

/* The index's priority of the message, from the start of its content
 * (qindex_priority_iov looks at no more than that); head is then freed. */
static int queue_stream_priority(struct q_stream *st)
{
	if (st->prio < 0) {
		struct iovec iov = {st->head.data, st->head.len};
		st->prio = qindex_priority_iov(&iov, 1);
		buf_free(&st->head);
	}
	return st->prio;
}

static void queue_stream_keep_head(struct q_stream *st, const void *data, size_t len)
{
	if (st->prio >= 0)
		return;
	if (len > QUEUE_STREAM_HEAD - st->head.len)
		len = QUEUE_STREAM_HEAD - st->head.len;
	buf_append(&st->head, data, len);
	if (st->head.len == QUEUE_STREAM_HEAD)
		queue_stream_priority(st);
}

/* Creates tmp/<id> exclusively, drawing fresh ids while the name is taken. */
static int queue_stream_create(struct queue *q, struct q_env *env)
{
	for (int tries = 0; tries < QUEUE_COMMIT_TRY; tries++) {
		int fd;

		if (tries > 0)
			queue_new_id(env->id);
		fd = openat(q->fd[QD_TMP], env->id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

struct q_stream *queue_stream_open(struct queue *q, struct q_env *env)
{
	struct q_stream *st;
	int fd;

	if (queue_prepare(env, NULL, 0) != Q_OK)
		return NULL;
	fd = queue_stream_create(q, env);
	if (fd < 0)
		return NULL;
	st = xcalloc(1, sizeof(*st));
	st->q = q;
	st->fd = fd;
	st->prio = -1;
	memcpy(st->id, env->id, QUEUE_ID_MAX);
	queue_file_format_envelope(&st->envelope, env, QF_SIZE_WIDTH);
	if (fs_write_all(fd, st->envelope.data, st->envelope.len) < 0) {
		int saved = errno;
		queue_stream_abort(st);
		errno = saved;
		return NULL;
	}
	return st;
}

static int queue_stream_flush(struct q_stream *st)
{
	if (st->err == 0 && st->wbuf.len > 0 &&
	    fs_write_all(st->fd, st->wbuf.data, st->wbuf.len) < 0)
		st->err = errno;
	buf_reset(&st->wbuf);
	errno = st->err;
	return st->err ? -1 : 0;
}

int queue_stream_write(struct q_stream *st, const void *data, size_t len)
{
	if (st->err) {
		errno = st->err;
		return -1;
	}
	st->crc = queue_file_crc32(st->crc, data, len);
	st->size += len;
	queue_stream_keep_head(st, data, len);
	if (st->wbuf.len + len <= QUEUE_STREAM_BUF) {
		buf_append(&st->wbuf, data, len);
		return 0;
	}
	if (queue_stream_flush(st) < 0)
		return -1;
	if (len >= QUEUE_STREAM_BUF) {
		if (fs_write_all(st->fd, data, len) < 0)
			st->err = errno;
	} else
		buf_append(&st->wbuf, data, len);
	errno = st->err;
	return st->err ? -1 : 0;
}

uint64_t queue_stream_size(const struct q_stream *st)
{
	return st->size;
}

const char *queue_stream_id(const struct q_stream *st)
{
	return st->id;
}

void queue_stream_abort(struct q_stream *st)
{
	if (st == NULL)
		return;
	if (st->fd >= 0) {
		close(st->fd);
		unlinkat(st->q->fd[QD_TMP], st->id, 0);
	}
	buf_free(&st->envelope);
	buf_free(&st->wbuf);
	buf_free(&st->head);
	free(st);
}

/* The rest of the content, the size record (in place), the end record. */
static int queue_stream_finish(struct q_stream *st, struct q_env *env)
{
	struct buf end = BUF_INIT;
	size_t digits = st->envelope.len - 1 - QF_SIZE_WIDTH; /* "size 000...\n" */
	uint32_t crc;
	int rc = 0;

	if (queue_stream_flush(st) < 0)
		return -1;
	env->size = st->size;
	snprintf(st->envelope.data + digits, QF_SIZE_WIDTH + 1, "%0*" PRIu64, QF_SIZE_WIDTH,
		 st->size);
	st->envelope.data[st->envelope.len - 1] = '\n';
	crc = queue_file_crc32(0, st->envelope.data, st->envelope.len);
	crc = queue_file_crc32_combine(crc, st->crc, st->size);
	queue_file_format_end(&end, st->size, crc);
	if (pwrite(st->fd, st->envelope.data + digits, QF_SIZE_WIDTH, (off_t)digits) !=
		QF_SIZE_WIDTH ||
	    fs_write_all(st->fd, end.data, end.len) < 0)
		rc = -1;
	buf_free(&end);
	return rc;
}

int queue_batch_add_stream(struct q_batch *b, struct q_stream *st, struct q_env *env)
{
	int saved;

	if (st->q != b->q) {
		queue_stream_abort(st);
		errno = EINVAL;
		return Q_PERMFAIL;
	}
	if (queue_stream_finish(st, env) < 0) {
		saved = errno;
		log_warn("queue: stage %s", st->id);
		queue_stream_abort(st);
		errno = saved;
		return Q_TEMPFAIL;
	}
	memcpy(env->id, st->id, QUEUE_ID_MAX);
	queue_batch_push(b, env, st->fd, queue_stream_priority(st));
	st->fd = -1; /* the batch owns it now */
	queue_stream_abort(st);
	return Q_OK;
}

/* Marks message i failed at step (logged later by queue_batch_report) and
 * removes its tmp file. */
static void queue_batch_fail(struct q_batch *b, size_t i, struct q_result *res, const char *step)
{
	res[i].status = Q_TEMPFAIL;
	res[i].err = errno;
	b->v[i].failed = step;
	queue_staged_drop(b, &b->v[i]);
}

/* Step 1: each file's data (and size) on disk. fdatasync suffices for a
 * new file. One sync per file: syncfs would flush the whole file system
 * (other programs' data too) and older kernels do not report its errors. */
static void queue_batch_sync(struct q_batch *b, struct q_result *res)
{
	/* Write-back of every file first, so the waits below overlap. A hint
	 * only: errors show up again in fdatasync. */
	for (size_t i = 0; i < b->n; i++)
		(void)sync_file_range(b->v[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	for (size_t i = 0; i < b->n; i++) {
		struct q_staged *st = &b->v[i];

		if (fdatasync(st->fd) < 0) {
			queue_batch_fail(b, i, res, "fsync");
			continue;
		}
		if (close(st->fd) < 0) {
			st->fd = -1;
			queue_batch_fail(b, i, res, "close");
			continue;
		}
		st->fd = -1;
	}
}

/* Step 2: link each durable file into queue/ and forget its tmp name. */
static void queue_batch_link(struct q_batch *b, struct q_result *res)
{
	struct queue *q = b->q;

	for (size_t i = 0; i < b->n; i++) {
		const char *id = b->v[i].id;

		if (res[i].status != Q_OK)
			continue;
		if (linkat(q->fd[QD_TMP], id, q->fd[QD_QUEUE], id, 0) < 0) {
			queue_batch_fail(b, i, res, "link");
			continue;
		}
		if (unlinkat(q->fd[QD_TMP], id, 0) < 0)
			b->v[i].tmp_left = errno;
	}
}

/* Step 3: one fsync of queue/ makes every new name durable. If it fails,
 * no message of the batch may be acknowledged, so the names go again. */
static void queue_batch_sync_dir(struct q_batch *b, struct q_result *res)
{
	int err;

	if (fsync(b->q->fd[QD_QUEUE]) == 0)
		return;
	err = errno;
	b->dir_failed = err;
	for (size_t i = 0; i < b->n; i++) {
		if (res[i].status != Q_OK)
			continue;
		unlinkat(b->q->fd[QD_QUEUE], b->v[i].id, 0);
		res[i].status = Q_TEMPFAIL;
		res[i].err = err;
	}
}

/* Steps 1-3 with system calls only (no log, no events, no allocation), so
 * the committer thread can run it. */
static void queue_batch_run(struct q_batch *b, struct q_result *res)
{
	b->dir_failed = 0;
	for (size_t i = 0; i < b->n; i++) {
		res[i].status = Q_OK;
		res[i].err = 0;
		b->v[i].failed = NULL;
		b->v[i].tmp_left = 0;
	}
	queue_batch_sync(b, res);
	queue_batch_link(b, res);
	queue_batch_sync_dir(b, res);
}

/* On the owner's thread after queue_batch_run: logs what failed, empties
 * the batch for reuse and returns the number of Q_OK. */
static int queue_batch_report(struct q_batch *b, const struct q_result *res)
{
	int n_ok = 0;

	for (size_t i = 0; i < b->n; i++) {
		const struct q_staged *st = &b->v[i];

		if (st->failed) {
			errno = res[i].err;
			log_warn("queue: commit %s: %s", st->id, st->failed);
		}
		if (st->tmp_left) {
			errno = st->tmp_left;
			log_warn("queue: unlink tmp/%s (recovery will remove it)", st->id);
		}
		n_ok += res[i].status == Q_OK;
		queue_staged_indexed(b, &b->v[i], res[i].status == Q_OK);
	}
	if (b->dir_failed) {
		errno = b->dir_failed;
		log_warn("queue: commit: fsync queue directory");
	}
	b->n = 0;
	return n_ok;
}

int queue_batch_commit(struct q_batch *b, struct q_result *res)
{
	queue_batch_run(b, res);
	return queue_batch_report(b, res);
}

/* -------------------------------------------------- committer thread */

/* One worker thread that runs queue_batch_run for batches handed over by
 * the owner's thread. mu guards the fields from job on (the worker uses
 * the batch only between taking it and setting finished). */
struct q_committer {
	pthread_t thread;
	struct queue *q;
	int efd; /* eventfd: readable when a batch is finished */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct q_batch *job;  /* handed over, not yet collected */
	struct q_result *res; /* its results */
	int finished;	      /* job done, not yet collected */
	int stop;
};

/* 1 if a batch is handed over but not done (mu held). */
static int queue_committer_pending(const struct q_committer *c)
{
	return c->job != NULL && !c->finished;
}

/* Worker: runs the batch handed over and signals the owner (mu held). */
static void queue_committer_run_job(struct q_committer *c)
{
	const uint64_t one = 1;

	pthread_mutex_unlock(&c->mu);
	queue_batch_run(c->job, c->res);
	pthread_mutex_lock(&c->mu);
	c->finished = 1;
	/* Under mu, so whoever sees finished also finds the count. */
	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* cannot fail below 2^64-1 */
	}
	pthread_cond_broadcast(&c->cv);
}

static void *queue_committer_main(void *arg)
{
	struct q_committer *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->stop && !queue_committer_pending(c))
			pthread_cond_wait(&c->cv, &c->mu);
		if (!queue_committer_pending(c))
			break; /* stopping, nothing left to do */
		queue_committer_run_job(c);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

struct q_committer *queue_committer_new(struct queue *q)
{
	struct q_committer *c = xcalloc(1, sizeof(*c));
	int err;

	c->q = q;
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0) {
		err = errno;
		free(c);
		errno = err;
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	err = pthread_create(&c->thread, NULL, queue_committer_main, c);
	if (err != 0) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		close(c->efd);
		free(c);
		errno = err;
		return NULL;
	}
	return c;
}

void queue_committer_free(struct q_committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1; /* the worker finishes a batch in flight first */
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	if (c->job != NULL) /* finished, never collected: empty it all the same */
		queue_batch_report(c->job, c->res);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	close(c->efd);
	free(c);
}

int queue_committer_fd(const struct q_committer *c)
{
	return c->efd;
}

int queue_committer_start(struct q_committer *c, struct q_batch *b, struct q_result *res)
{
	if (b->q != c->q) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&c->mu);
	if (c->job != NULL || c->stop) {
		pthread_mutex_unlock(&c->mu);
		errno = EBUSY;
		return -1;
	}
	c->job = b;
	c->res = res;
	c->finished = 0;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int queue_committer_busy(struct q_committer *c)
{
	int busy;

	pthread_mutex_lock(&c->mu);
	busy = c->job != NULL;
	pthread_mutex_unlock(&c->mu);
	return busy;
}

struct q_batch *queue_committer_done(struct q_committer *c, int wait)
{
	struct q_batch *b = NULL;
	struct q_result *res = NULL;
	uint64_t count;

	pthread_mutex_lock(&c->mu);
	while (wait && queue_committer_pending(c))
		pthread_cond_wait(&c->cv, &c->mu);
	if (c->job != NULL && c->finished) {
		b = c->job;
		res = c->res;
		c->job = NULL;
		c->res = NULL;
		c->finished = 0;
		/* Written under mu when finished was set: consume it now. */
		if (read(c->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
			log_warn("queue: committer eventfd");
	}
	pthread_mutex_unlock(&c->mu);
	if (b != NULL)
		queue_batch_report(b, res);
	return b;
}

int queue_commit(struct queue *q, struct q_env *env, const struct iovec *iov, int iovcnt)
{
	struct q_batch b = {.q = q};
	struct q_result res = {Q_TEMPFAIL, EEXIST};

	/* A name taken in queue/ (another process drew the same id) means a
	 * fresh id and a new file, as when the tmp name is taken. */
	for (int tries = 0; tries < QUEUE_COMMIT_TRY; tries++) {
		int rc = queue_batch_add(&b, env, iov, iovcnt);

		if (rc != Q_OK) {
			free(b.v);
			return rc;
		}
		queue_batch_commit(&b, &res);
		if (res.status == Q_OK || res.err != EEXIST)
			break;
		queue_new_id(env->id);
	}
	free(b.v);
	errno = res.err;
	return res.status;
}

/* Appends from fd to out until out holds at least want bytes or the file
 * ends; out stays NUL-terminated. */
static int queue_read_upto(int fd, struct buf *out, size_t want)
{
	size_t room;
	ssize_t n;

	while (out->len < want) {
		if (out->len + 1 >= out->cap)
			buf_reserve(out, 65536);
		room = out->cap - 1 - out->len;
		n = read(fd, out->data + out->len, room < want - out->len ? room : want - out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		out->len += (size_t)n;
	}
	out->data[out->len] = '\0';
	return 0;
}

/* Reads name under dirfd whole into out: one open, fstat, read, close. */
static int queue_read_at(int dirfd, const char *name, struct buf *out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int saved;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	buf_reserve(out, (size_t)st.st_size + 1);
	if (queue_read_upto(fd, out, SIZE_MAX) < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* rename() that fails with EEXIST instead of replacing the target. */
static int queue_rename_noreplace(int fromfd, const char *from, int tofd, const char *to)
{
	if (renameat2(fromfd, from, tofd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL) /* EINVAL: the file system lacks NOREPLACE */
		return -1;
	if (faccessat(tofd, to, F_OK, 0) == 0) {
		errno = EEXIST;
		return -1;
	}
	return renameat(fromfd, from, tofd, to);
}

/* Moves dir/name to corrupt/<name><suffix> without replacing anything there,
 * and makes both directory changes durable. The new name goes to dest. */
static int queue_quarantine(struct queue *q, int from, const char *name, const char *suffix,
			    char *dest, size_t destlen)
{
	int rc = -1;

	for (int i = 0; i < 100 && rc < 0; i++) {
		if (i == 0)
			snprintf(dest, destlen, "%s%s", name, suffix);
		else
			snprintf(dest, destlen, "%s%s.%d", name, suffix, i);
		rc = queue_rename_noreplace(q->fd[from], name, q->fd[QD_CORRUPT], dest);
		if (rc < 0 && errno != EEXIST)
			break;
	}
	if (rc < 0 || fsync(q->fd[QD_CORRUPT]) < 0 || fsync(q->fd[from]) < 0) {
		int saved = errno;
		log_warn("queue: cannot move %s/%s to corrupt/", queue_subdir[from], name);
		errno = saved;
		return -1;
	}
	return 0;
}

/* Moves a damaged queue file aside and says so in the event log. */
static void queue_damaged(struct queue *q, const char *name, const char *why)
{
	char dest[NAME_MAX + 1];
	const char *kv[] = {"queue_id", name, "reason", why, NULL};

	qindex_remove(q->ix, name);
	if (queue_quarantine(q, QD_QUEUE, name, "", dest, sizeof(dest)) < 0) {
		event_logkv(EV_QUEUE_CORRUPT, kv,
			    "Queue file %s is damaged (%s) and could not be moved to corrupt/: %s",
			    name, why, strerror(errno));
		return;
	}
	event_logkv(EV_QUEUE_CORRUPT, kv, "Queue file %s is damaged (%s); moved to corrupt/%s",
		    name, why, dest);
}

/* Merges state/<id> into env. A damaged state file is moved aside: the
 * recipients then count as pending (duplicates possible, loss never). */
static int queue_load_state(struct queue *q, struct q_env *env)
{
	struct buf sb = BUF_INIT;
	char why[QF_WHY_MAX], dest[NAME_MAX + 1];
	int rc = Q_OK;

	if (!queue_states_get(q, env->id, &sb) &&
	    queue_read_at(q->fd[QD_STATE], env->id, &sb) < 0) {
		if (errno != ENOENT) {
			int saved = errno;
			log_warn("queue: read state/%s", env->id);
			errno = saved;
			rc = Q_TEMPFAIL;
		}
		buf_free(&sb);
		return rc;
	}
	if (queue_file_state_parse(sb.data, sb.len, env, why) == 0)
		goto out;
	if (queue_quarantine(q, QD_STATE, env->id, ".state", dest, sizeof(dest)) < 0)
		snprintf(dest, sizeof(dest), "(not moved: %s)", strerror(errno));
	const char *kv[] = {"queue_id", env->id, "reason", why, NULL};
	event_logkv(EV_QUEUE_CORRUPT, kv,
		    "State file of queued message %s is damaged (%s); moved to corrupt/%s; "
		    "all recipients will be retried, duplicates are possible",
		    env->id, why, dest);
out:
	buf_free(&sb);
	return rc;
}

/* After a parse of queue/<id> into env (prc: 0 or -1 with why): checks the
 * id record, merges the state file. A damaged file goes to corrupt/. */
static int queue_load_finish(struct queue *q, const char *id, struct q_env *env, int prc,
			     char why[QF_WHY_MAX])
{
	int rc;

	if (prc < 0)
		goto damaged;
	if (strcmp(env->id, id) != 0) {
		snprintf(why, QF_WHY_MAX, "file name does not match id record %.24s", env->id);
		q_env_free(env);
		goto damaged;
	}
	rc = queue_load_state(q, env);
	if (rc != Q_OK)
		q_env_free(env);
	return rc;
damaged:
	queue_damaged(q, id, why);
	errno = EBADMSG;
	return Q_PERMFAIL;
}

/* A message file that cannot be opened: gone (removed by another process),
 * so the index forgets it too (Q_PERMFAIL), or not readable now (Q_TEMPFAIL). */
static int queue_missing(struct queue *q, const char *id)
{
	if (errno != ENOENT)
		return Q_TEMPFAIL;
	qindex_remove(q->ix, id);
	errno = ENOENT;
	return Q_PERMFAIL;
}

int queue_load(struct queue *q, const char *id, struct q_env *env, struct buf *content)
{
	struct buf file = BUF_INIT;
	char why[QF_WHY_MAX];
	size_t off = 0;
	int rc, prc;

	memset(env, 0, sizeof(*env));
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return Q_PERMFAIL;
	}
	if (queue_read_at(q->fd[QD_QUEUE], id, &file) < 0) {
		rc = queue_missing(q, id);
		buf_free(&file);
		return rc;
	}
	prc = queue_file_parse(file.data, file.len, env, &off, why);
	rc = queue_load_finish(q, id, env, prc, why);
	if (rc == Q_OK && !qindex_has(q->ix, id)) /* committed by another process */
		qindex_put(q->ix, env, retry_priority_of(file.data + off, (size_t)env->size));
	if (rc == Q_OK && content)
		buf_append(content, file.data + off, (size_t)env->size);
	buf_free(&file);
	return rc;
}

/* Reads the start of fd (file_len bytes long) until the envelope parses:
 * QUEUE_HEAD_READ bytes first, twice as many each time it needs more. */
static int queue_read_envelope(int fd, uint64_t file_len, struct q_env *env, char why[QF_WHY_MAX],
			       int *prio)
{
	struct buf head = BUF_INIT;
	size_t want = QUEUE_HEAD_READ, off;
	int prc;

	for (;;) {
		buf_reserve(&head, want - head.len);
		if (queue_read_upto(fd, &head, want) < 0) {
			buf_free(&head);
			return -2;
		}
		prc = queue_file_parse_envelope(head.data, head.len, file_len, env, &off, why);
		if (prc != 1)
			break;
		if (head.len < want) { /* the file ended before its length said */
			snprintf(why, QF_WHY_MAX, "truncated header");
			prc = -1;
			break;
		}
		want *= 2;
	}
	/* The headers read with the envelope give the priority (for the index). */
	if (prc == 0)
		*prio = retry_priority_of(head.data + off, head.len - off);
	buf_free(&head);
	return prc;
}

int queue_load_envelope(struct queue *q, const char *id, struct q_env *env)
{
	char why[QF_WHY_MAX];
	struct stat st;
	int fd, prc, saved, prio = PRIORITY_NORMAL, rc;

	memset(env, 0, sizeof(*env));
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return Q_PERMFAIL;
	}
	fd = openat(q->fd[QD_QUEUE], id, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return queue_missing(q, id);
	prc = fstat(fd, &st) < 0 ? -2
				 : queue_read_envelope(fd, (uint64_t)st.st_size, env, why, &prio);
	saved = errno;
	close(fd);
	if (prc == -2) {
		errno = saved;
		return Q_TEMPFAIL;
	}
	rc = queue_load_finish(q, id, env, prc, why);
	if (rc == Q_OK && !qindex_has(q->ix, id)) /* committed by another process */
		qindex_put(q->ix, env, prio);
	return rc;
}

int queue_update(struct queue *q, const struct q_env *env)
{
	struct buf sb = BUF_INIT;
	char *path;
	int rc = Q_OK, saved = 0;

	if (!queue_id_valid(env->id) || queue_env_check(env) < 0) {
		errno = EINVAL;
		return Q_PERMFAIL;
	}
	if (q->states) /* an older image on its way must not overwrite this one */
		return queue_update_later(q, env);
	queue_file_state_format(&sb, env);
	path = xasprintf("%s/state/%s", q->dir, env->id);
	if (fs_write_atomic(path, sb.data, sb.len, 0600) < 0) {
		saved = errno;
		log_warn("queue: write state/%s", env->id);
		rc = Q_TEMPFAIL;
	}
	free(path);
	buf_free(&sb);
	if (rc != Q_OK)
		errno = saved;
	else
		qindex_update(q->ix, env);
	return rc;
}

int queue_remove(struct queue *q, const char *id)
{
	int saved;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return Q_PERMFAIL;
	}
	queue_states_forget(q, id);
	/* State first: a crash in between leaves the message with all
	 * recipients pending (a duplicate), never a state without its file. */
	if (unlinkat(q->fd[QD_STATE], id, 0) < 0 && errno != ENOENT)
		goto fail;
	if (unlinkat(q->fd[QD_QUEUE], id, 0) < 0)
		return errno == ENOENT ? Q_PERMFAIL : Q_TEMPFAIL;
	qindex_remove(q->ix, id);
	if (fsync(q->fd[QD_QUEUE]) < 0)
		goto fail;
	return Q_OK;
fail:
	saved = errno;
	log_warn("queue: remove %s", id);
	errno = saved;
	return Q_TEMPFAIL;
}

/* Lists the names in a directory (without . and ..). */
static int queue_list(int dirfd, struct strlist *out)
{
	int fd = dup(dirfd);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			strlist_add(out, de->d_name);
	closedir(d);
	return 0;
}

static int queue_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int queue_scan(struct queue *q, int (*cb)(const char *id, void *arg), void *arg)
{
	struct strlist names = {0};
	size_t n = 0;

	if (queue_list(q->fd[QD_QUEUE], &names) < 0)
		return Q_TEMPFAIL;
	for (size_t i = 0; i < names.n; i++)
		if (queue_id_valid(names.v[i]))
			names.v[n++] = names.v[i];
		else
			free(names.v[i]);
	names.n = n;
	/* Ids have a fixed width and start with the time in hex: name order
	 * is time order. */
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(*names.v), queue_cmp);
	for (size_t i = 0; i < names.n; i++)
		if (cb(names.v[i], arg) != 0)
			break;
	strlist_free(&names);
	return Q_OK;
}

/* Removes every file in tmp/: none of them was ever acknowledged. */
static int queue_recover_tmp(struct queue *q)
{
	struct strlist names = {0};
	int rc = 0;

	if (queue_list(q->fd[QD_TMP], &names) < 0)
		return -1;
	for (size_t i = 0; i < names.n; i++)
		if (unlinkat(q->fd[QD_TMP], names.v[i], 0) < 0) {
			log_warn("queue: recover: unlink tmp/%s", names.v[i]);
			rc = -1;
		}
	if (names.n)
		log_info("queue: recover: removed %zu unfinished file(s) from tmp/", names.n);
	strlist_free(&names);
	return rc;
}

/* Checks every queue file; damaged ones and foreign names go to corrupt/. */
static int queue_recover_files(struct queue *q, int *n_ok, int *n_corrupt)
{
	struct strlist names = {0};
	struct q_env env;
	int rc = 0;

	if (queue_list(q->fd[QD_QUEUE], &names) < 0)
		return -1;
	for (size_t i = 0; i < names.n; i++) {
		if (!queue_id_valid(names.v[i])) {
			queue_damaged(q, names.v[i], "not a queue id");
			(*n_corrupt)++;
			continue;
		}
		int st = queue_load(q, names.v[i], &env, NULL);
		q_env_free(&env);
		if (st == Q_OK)
			(*n_ok)++;
		else if (errno == EBADMSG)
			(*n_corrupt)++;
		else if (errno != ENOENT)
			rc = -1;
	}
	strlist_free(&names);
	return rc;
}

/* Removes state files without a queue file (and fs_write_atomic leftovers). */
static int queue_recover_state(struct queue *q)
{
	struct strlist names = {0};
	int rc = 0;

	if (queue_list(q->fd[QD_STATE], &names) < 0)
		return -1;
	for (size_t i = 0; i < names.n; i++) {
		const char *n = names.v[i];
		if (queue_id_valid(n) && faccessat(q->fd[QD_QUEUE], n, F_OK, 0) == 0)
			continue;
		if (unlinkat(q->fd[QD_STATE], n, 0) < 0 && errno != ENOENT) {
			log_warn("queue: recover: unlink state/%s", n);
			rc = -1;
		}
	}
	strlist_free(&names);
	return rc;
}

int queue_recover(struct queue *q, int *n_ok, int *n_corrupt)
{
	int ok = 0, bad = 0, rc = Q_OK;

	if (queue_recover_tmp(q) < 0)
		rc = Q_TEMPFAIL;
	if (queue_recover_files(q, &ok, &bad) < 0)
		rc = Q_TEMPFAIL;
	if (queue_recover_state(q) < 0)
		rc = Q_TEMPFAIL;
	if (fsync(q->fd[QD_TMP]) < 0 || fsync(q->fd[QD_STATE]) < 0)
		rc = Q_TEMPFAIL;
	if (n_ok)
		*n_ok = ok;
	if (n_corrupt)
		*n_corrupt = bad;
	return rc;
}

/* ------------------------------------------------- listing in slices */

struct q_lister {
	DIR *dir;
};

struct q_lister *queue_lister_new(struct queue *q)
{
	struct q_lister *l;
	int fd = dup(q->fd[QD_QUEUE]), saved;
	DIR *d;

	if (fd < 0)
		return NULL;
	if ((d = fdopendir(fd)) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return NULL;
	}
	rewinddir(d);
	l = xcalloc(1, sizeof(*l));
	l->dir = d;
	return l;
}

int queue_lister_next(struct q_lister *l, struct strlist *out, int budget_ms, int all)
{
	long long deadline = clock_mono_ms() + budget_ms;
	struct dirent *de;
	unsigned n = 0;

	if (l->dir == NULL)
		return 0;
	while ((de = readdir(l->dir)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    (all || queue_id_valid(de->d_name)))
			strlist_add(out, de->d_name);
		if (++n % 256 == 0 && clock_mono_ms() >= deadline)
			return 1;
	}
	closedir(l->dir);
	l->dir = NULL;
	return 0;
}

void queue_lister_free(struct q_lister *l)
{
	if (l == NULL)
		return;
	if (l->dir)
		closedir(l->dir);
	free(l);
}

/* ------------------------------------------- recovery in slices (daemon) */

/* Listing queue/ (names read in slices from an open directory stream),
 * then reading each envelope into the index, then the end. */
enum q_rec_phase { QR_LIST, QR_LOAD, QR_DONE };

struct q_recovery {
	enum q_rec_phase phase;
	struct q_lister *ls;
	struct strlist names;
	size_t pos;
	int ok, corrupt, failed;
};

static void queue_recover_free(struct queue *q)
{
	if (q->rec == NULL)
		return;
	queue_lister_free(q->rec->ls);
	strlist_free(&q->rec->names);
	free(q->rec);
	q->rec = NULL;
}

int queue_recover_begin(struct queue *q)
{
	queue_recover_free(q);
	q->rec = xcalloc(1, sizeof(*q->rec));
	if (queue_recover_tmp(q) < 0)
		q->rec->failed = 1;
	if ((q->rec->ls = queue_lister_new(q)) == NULL) {
		queue_recover_free(q);
		return Q_TEMPFAIL;
	}
	return Q_OK;
}

/* One name of the listing: the envelope into the index (the content's
 * checksum is checked when the message is loaded for delivery). */
static void queue_recover_one(struct queue *q, const char *name)
{
	struct q_recovery *r = q->rec;
	struct q_env env;

	if (!queue_id_valid(name)) {
		queue_damaged(q, name, "not a queue id");
		r->corrupt++;
		return;
	}
	if (qindex_has(q->ix, name)) { /* loaded for delivery already */
		r->ok++;
		return;
	}
	int st = queue_load_envelope(q, name, &env);
	q_env_free(&env);
	if (st == Q_OK)
		r->ok++;
	else if (errno == EBADMSG)
		r->corrupt++;
	else if (errno != ENOENT) /* ENOENT: delivered and removed meanwhile */
		r->failed = 1;
}

/* The end: orphan state files go, tmp/ and state/ are made durable. */
static void queue_recover_finish(struct queue *q)
{
	if (queue_recover_state(q) < 0)
		q->rec->failed = 1;
	if (fsync(q->fd[QD_TMP]) < 0 || fsync(q->fd[QD_STATE]) < 0)
		q->rec->failed = 1;
	strlist_free(&q->rec->names);
	q->rec->phase = QR_DONE;
}

int queue_recover_step(struct queue *q, int budget_ms)
{
	struct q_recovery *r = q->rec;
	long long deadline = clock_mono_ms() + budget_ms;

	if (r == NULL || r->phase == QR_DONE)
		return 0;
	if (r->phase == QR_LIST) {
		if (queue_lister_next(r->ls, &r->names, budget_ms, 1))
			return 1;
		r->phase = QR_LOAD;
	}
	while (r->pos < r->names.n) {
		queue_recover_one(q, r->names.v[r->pos++]);
		if (r->pos % 16 == 0 && clock_mono_ms() >= deadline)
			return 1;
	}
	queue_recover_finish(q);
	return 0;
}

int queue_recover_progress(const struct queue *q, struct q_recover_progress *p)
{
	const struct q_recovery *r = q->rec;

	memset(p, 0, sizeof(*p));
	if (r == NULL)
		return 0;
	p->listing = r->phase == QR_LIST;
	p->done = r->pos;
	p->total = r->phase == QR_DONE ? (size_t)(r->ok + r->corrupt) : r->names.n;
	p->ok = r->ok;
	p->corrupt = r->corrupt;
	p->failed = r->failed;
	return r->phase != QR_DONE;
}

/* ------------------------------------ state updates off the owner's thread */

/* One message's newest state image, not yet durable. gen counts changes,
 * so the writer knows whether what it wrote is still the newest. */
struct q_state_entry {
	char id[QUEUE_ID_MAX];
	struct buf image;
	unsigned gen, written; /* written: the gen on disk (0: none yet) */
	int removed;	       /* queue_remove came while it was being written */
};

/* The writer thread and its table; mu guards everything but the thread. */
struct q_states {
	struct queue *q;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct q_state_entry **v;
	size_t n, cap;
	int dirty, busy, stop;
	unsigned long flushes, failures;
};

/* The entry of id (mu held), or NULL. */
static struct q_state_entry *queue_states_find(struct q_states *st, const char *id)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->v[i]->id, id) == 0)
			return st->v[i];
	return NULL;
}

static void queue_states_drop(struct q_states *st, size_t i)
{
	buf_free(&st->v[i]->image);
	free(st->v[i]);
	st->v[i] = st->v[--st->n];
}

/* Writes one image as state/<id> (temp, fdatasync, rename). No log, no
 * allocation: it runs on the writer thread. */
static int queue_states_write(struct queue *q, const char *id, const struct buf *image)
{
	char tmp[QUEUE_ID_MAX + 16];
	int fd, rc = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp.w", id);
	fd = openat(q->fd[QD_STATE], tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (fs_write_all(fd, image->data, image->len) == 0 && fdatasync(fd) == 0)
		rc = 0;
	if (close(fd) < 0)
		rc = -1;
	if (rc == 0 && renameat(q->fd[QD_STATE], tmp, q->fd[QD_STATE], id) == 0)
		return 0;
	unlinkat(q->fd[QD_STATE], tmp, 0);
	return -1;
}

/* One round (mu held on entry and exit): copies of the dirty images are
 * written without the lock, state/ synced once, then entries that are
 * durable and unchanged leave the table. */
static void queue_states_round(struct q_states *st)
{
	size_t n = st->n, failed = 0;
	struct q_state_entry *copy = xcalloc(n ? n : 1, sizeof(*copy));

	for (size_t i = 0; i < n; i++) {
		memcpy(copy[i].id, st->v[i]->id, QUEUE_ID_MAX);
		copy[i].gen = st->v[i]->gen;
		if (st->v[i]->written != st->v[i]->gen && !st->v[i]->removed)
			buf_append(&copy[i].image, st->v[i]->image.data, st->v[i]->image.len);
	}
	st->dirty = 0;
	st->busy = 1;
	pthread_mutex_unlock(&st->mu);
	for (size_t i = 0; i < n; i++)
		if (copy[i].image.len &&
		    queue_states_write(st->q, copy[i].id, &copy[i].image) < 0) {
			copy[i].gen = 0;
			failed++;
		}
	if (fsync(st->q->fd[QD_STATE]) < 0)
		failed = n + 1; /* nothing of this round counts as durable */
	pthread_mutex_lock(&st->mu);
	st->busy = 0;
	st->flushes++;
	for (size_t i = 0; i < n; i++) {
		struct q_state_entry *e = queue_states_find(st, copy[i].id);
		if (e && failed <= n && copy[i].gen)
			e->written = copy[i].gen > e->written ? copy[i].gen : e->written;
		buf_free(&copy[i].image);
	}
	free(copy);
	for (size_t i = 0; i < st->n;) {
		struct q_state_entry *e = st->v[i];
		if (e->removed)
			unlinkat(st->q->fd[QD_STATE], e->id, 0); /* written after the removal */
		if (e->removed || e->written == e->gen)
			queue_states_drop(st, i);
		else
			i++;
	}
	if (failed) {
		st->failures++;
		st->dirty = 1; /* again, after a pause (a full disk does not spin) */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&st->cv, &st->mu, &ts);
	}
	pthread_cond_broadcast(&st->cv);
}

static void *queue_states_main(void *arg)
{
	struct q_states *st = arg;

	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->dirty && !st->stop)
			pthread_cond_wait(&st->cv, &st->mu);
		if (!st->dirty)
			break;
		queue_states_round(st);
		if (st->stop && st->failures > 8)
			break; /* stopping, and the disk keeps failing: give up */
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

static struct q_states *queue_states_start(struct queue *q)
{
	struct q_states *st = xcalloc(1, sizeof(*st));

	st->q = q;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	if (pthread_create(&st->thread, NULL, queue_states_main, st) != 0) {
		pthread_cond_destroy(&st->cv);
		pthread_mutex_destroy(&st->mu);
		free(st);
		return NULL;
	}
	return st;
}

static void queue_states_stop(struct queue *q)
{
	struct q_states *st = q->states;

	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	st->stop = 1;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->thread, NULL);
	if (st->n)
		log_warnx("queue: %zu state update(s) could not be written; those recipients "
			  "will be tried again",
			  st->n);
	while (st->n)
		queue_states_drop(st, 0);
	free(st->v);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st);
	q->states = NULL;
}

/* The newest image of id not yet durable, appended to out: 1, or 0. */
static int queue_states_get(struct queue *q, const char *id, struct buf *out)
{
	struct q_state_entry *e;
	int found = 0;

	if (q->states == NULL)
		return 0;
	pthread_mutex_lock(&q->states->mu);
	e = queue_states_find(q->states, id);
	if (e && !e->removed) {
		buf_append(out, e->image.data, e->image.len);
		found = 1;
	}
	pthread_mutex_unlock(&q->states->mu);
	return found;
}

/* queue_remove: a pending image must not come back as an orphan. */
static void queue_states_forget(struct queue *q, const char *id)
{
	struct q_states *st = q->states;
	struct q_state_entry *e;

	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < st->n; i++) {
		e = st->v[i];
		if (strcmp(e->id, id) != 0)
			continue;
		if (st->busy) /* may be on its way to disk: the round removes it */
			e->removed = 1;
		else
			queue_states_drop(st, i);
		break;
	}
	pthread_mutex_unlock(&st->mu);
}

int queue_update_later(struct queue *q, const struct q_env *env)
{
	struct q_state_entry *e;

	if (!queue_id_valid(env->id) || queue_env_check(env) < 0) {
		errno = EINVAL;
		return Q_PERMFAIL;
	}
	if (q->states == NULL && (q->states = queue_states_start(q)) == NULL)
		return queue_update(q, env); /* no thread: the slow way */
	pthread_mutex_lock(&q->states->mu);
	e = queue_states_find(q->states, env->id);
	if (e == NULL) {
		struct q_states *st = q->states;
		if (st->n == st->cap) {
			st->cap = st->cap ? 2 * st->cap : 64;
			st->v = xrealloc(st->v, st->cap * sizeof(*st->v));
		}
		e = st->v[st->n++] = xcalloc(1, sizeof(*e));
		memcpy(e->id, env->id, QUEUE_ID_MAX);
	}
	buf_reset(&e->image);
	queue_file_state_format(&e->image, env);
	e->gen++;
	e->removed = 0;
	q->states->dirty = 1;
	pthread_cond_broadcast(&q->states->cv);
	pthread_mutex_unlock(&q->states->mu);
	qindex_update(q->ix, env);
	return Q_OK;
}
