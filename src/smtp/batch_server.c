/* XDMBATCH receiver (docs/batch-protocol.md): decodes the peer's records,
 * checks envelopes as RCPT would (policy_rcpt), keeps unfinished large
 * messages in per-peer partial files fsync'd at every data record (the
 * checkpoints), stages finished ones into one group commit per read, and
 * acknowledges only what that commit made durable. On any framing error
 * the rest of the stream is skipped to its end segment and the session
 * goes back to plain SMTP. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "mail/event.h"
#include "mail/message.h"
#include "mail/policy.h"
#include "mail/smtp_addr.h"
#include "smtp/batch_frame.h"
#include "smtp/batch_server.h"
#include "smtp/dsn.h"

#define BS_CKPT_MAX 1000 /* checkpoints listed per peer */
#define BS_CKPT_CMD 4	 /* ... in a DUPLEX command (a 512-byte line) */
#define BS_FEED_MAX (BF_SEG_MAX + 4)

/* The message being received. */
struct bs_msg {
	char id[BF_ID_MAX + 1];
	uint64_t size, got;
	struct q_env env;
	struct buf content;
	int fd;			      /* partial file, or -1 */
	int active;		      /* M taken, D and E expected */
	int skip;		      /* M refused: its D and E are skipped */
	char done_qid[BF_ID_MAX + 1]; /* committed in an earlier call: A at its E */
};

struct bs_staged {
	char id[BF_ID_MAX + 1];
	struct q_env env;
};

struct batch_server {
	struct batch_server_peer p;
	char *addr, *helo, *auth_user, *proto, *peer, *dir;
	struct bufferevent *bev;
	struct event *ev_input; /* reads the input that waited at the start */
	struct bframe_dec *dec;
	struct bs_msg m;
	struct q_batch *qb;
	struct bs_staged *st;
	size_t nst, cap;
	size_t n_ok, n_refused;
	uint64_t wire;
	int duplex;	     /* batch_duplex.c drives it: lines leave as ack frames */
	int listed_as_reply; /* ... at the hub's end: checkpoints as 250-CKPT */
};

void batch_server_ehlo_params(struct buf *out)
{
	buf_printf(out, " %d DICT=%d", BF_VERSION, BF_DICT_VERSION);
}

static void bs_line(struct batch_server *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bs_line(struct batch_server *b, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(b->bev);
	struct buf line = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&line, fmt, ap);
	va_end(ap);
	buf_puts(&line, "\r\n");
	if (b->duplex)
		bframe_ack_header(out, line.len);
	evbuffer_add(out, line.data, line.len);
	buf_free(&line);
}

/* ---------------------------------------------------------- partials */

static char *bs_partial_path(const struct batch_server *b, const char *id)
{
	return xasprintf("%s/%s", b->dir, id);
}

static void bs_partial_drop(struct batch_server *b, const char *id)
{
	char *path = bs_partial_path(b, id);

	if (unlink(path) == 0)
		fs_fsync_dir(b->dir);
	free(path);
}

/* Done markers, DIR/batch/<peer>/done/<id> holding the queue id we gave
 * the message: a message committed whose A the peer may not have had (the
 * line dropped first) is acknowledged again when it comes back, not queued
 * twice. They expire as partials do (batch_partial_expire). */
static char *bs_done_path(const struct batch_server *b, const char *id)
{
	return id ? xasprintf("%s/done/%s", b->dir, id) : xasprintf("%s/done", b->dir);
}

/* Writes the marker of a committed message (made durable by the caller's
 * directory fsync); a failure only costs a possible duplicate. */
static int bs_done_mark(struct batch_server *b, const char *id, const char *qid)
{
	char *path = bs_done_path(b, id);
	int fd, ok = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		ok = fs_write_all(fd, qid, strlen(qid)) == 0;
		close(fd);
	}
	if (!ok)
		log_warn("batch: done marker %s not written: %s", path, strerror(errno));
	free(path);
	return ok ? 0 : -1;
}

/* 1 with the queue id into qid if message id was committed before. */
static int bs_done_find(const struct batch_server *b, const char *id, char *qid, size_t size)
{
	char *path = bs_done_path(b, id);
	struct buf c = BUF_INIT;
	int found = fs_read_file(path, &c) == 0 && c.len > 0 && c.len < size;

	if (found)
		snprintf(qid, size, "%.*s", (int)c.len, c.data);
	buf_free(&c);
	free(path);
	return found;
}

/* The peer's name as a directory name: letters, digits, '.', '-', '_'. */
static char *bs_peer_key(const char *name)
{
	char *k = xstrdup(name && *name ? name : "unknown");

	for (char *c = k; *c; c++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_",
			    *c))
			*c = '_';
	if (k[0] == '.')
		k[0] = '_';
	return k;
}

/* One checkpoint into the listing: "250-CKPT" lines, or in the DUPLEX
 * command ("id:offset,..."), where only BS_CKPT_CMD fit. */
static void bs_list(const struct batch_server *b, struct buf *reply, size_t listed, const char *id,
		    long long size)
{
	if (!b->duplex || b->listed_as_reply)
		buf_printf(reply, "250-CKPT %s %lld\r\n", id, size);
	else if (listed < BS_CKPT_CMD)
		buf_printf(reply, "%s%s:%lld", listed ? "," : "", id, size);
}

/* Deletes partial files older than batch_partial_expire in dir; lists the
 * others into reply as checkpoints when list is set. */
static void bs_scan_dir(struct batch_server *b, const char *dir, int list, struct buf *reply)
{
	time_t too_old = clock_now() - b->p.cfg->batch_partial_expire;
	size_t listed = 0;
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(dir);

	while (d && (de = readdir(d)) != NULL) {
		char *path;

		if (de->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (st.st_mtime < too_old || (list && listed >= BS_CKPT_MAX) ||
			    !bframe_id_valid(de->d_name, strlen(de->d_name))) {
				log_info("batch: partial %s expired or over the limit: deleted",
					 path);
				unlink(path);
			} else if (list) {
				bs_list(b, reply, listed++, de->d_name, (long long)st.st_size);
			}
		}
		free(path);
	}
	if (d)
		closedir(d);
}

/* Expires every peer's partials; lists this peer's. */
static int bs_checkpoints(struct batch_server *b, struct buf *reply)
{
	char *top = xasprintf("%s/batch", queue_dir(b->p.q)), *marks = bs_done_path(b, NULL);
	struct dirent *de;
	DIR *d;

	if ((mkdir(top, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(b->dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(marks, 0700) < 0 && errno != EEXIST)) {
		log_warn("batch: cannot create %s: %s", marks, strerror(errno));
		free(top);
		free(marks);
		return -1;
	}
	free(marks);
	if ((d = opendir(top)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			char *sub = xasprintf("%s/%s", top, de->d_name);

			char *done = xasprintf("%s/done", sub);

			if (de->d_name[0] != '.' && strcmp(sub, b->dir) != 0)
				bs_scan_dir(b, sub, 0, NULL);
			if (de->d_name[0] != '.')
				bs_scan_dir(b, done, 0, NULL);
			free(done);
			free(sub);
		}
		closedir(d);
	}
	bs_scan_dir(b, b->dir, 1, reply);
	free(top);
	return 0;
}

/* Appends a data record to the partial file and syncs it: a checkpoint. */
static int bs_partial_write(struct batch_server *b, const char *p, size_t n)
{
	struct bs_msg *m = &b->m;

	if (m->fd < 0) {
		char *path = bs_partial_path(b, m->id);

		m->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		free(path);
		if (m->fd < 0 || fs_fsync_dir(b->dir) < 0)
			return -1;
	}
	if (fs_write_all(m->fd, p, n) < 0 || fdatasync(m->fd) < 0)
		return -1;
	return 0;
}

/* Reads the partial of m->id: it must hold exactly offset bytes. */
static int bs_partial_load(struct batch_server *b, uint64_t offset)
{
	char *path = bs_partial_path(b, b->m.id);
	int rc = fs_read_file(path, &b->m.content);

	free(path);
	if (rc < 0 || b->m.content.len != offset) {
		buf_reset(&b->m.content);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ messages */

static void bs_msg_reset(struct bs_msg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	q_env_free(&m->env);
	buf_free(&m->content);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

/* Refuses the whole message: an N line, its D and E skipped. */
static void bs_refuse(struct batch_server *b, const char *reply)
{
	bs_line(b, "N %s * %s", b->m.id, reply);
	b->n_refused++;
	bs_msg_reset(&b->m);
	b->m.skip = 1;
}

static int bs_mail_params(struct q_env *env, const char *s)
{
	struct smtp_params ps;
	const struct smtp_param *ret, *envid;
	const char *why;

	if (smtp_params_parse(s, &ps, &why) < 0)
		return -1;
	ret = smtp_params_get(&ps, "RET");
	envid = smtp_params_get(&ps, "ENVID");
	if (ret && ret->value)
		env->ret = strcasecmp(ret->value, "FULL") == 0 ? Q_RET_FULL : Q_RET_HDRS;
	if (envid && envid->value && dsn_xtext_valid(envid->value, 100))
		env->envid = xstrdup(envid->value);
	smtp_params_free(&ps);
	return 0;
}

/* "F <path> [params]" */
static int bs_sender(struct batch_server *b, const char *line)
{
	struct smtp_path path;
	const char *end, *why;
	int rc;

	if (strncmp(line, "F ", 2) != 0 || smtp_path_parse(line + 2, 1, &path, &end, &why) < 0)
		return -1;
	b->m.env.sender = xstrdup(path.mailbox);
	rc = bs_mail_params(&b->m.env, end);
	smtp_path_free(&path);
	return rc;
}

static void bs_rcpt_params(struct q_rcpt *r, const char *s)
{
	struct smtp_params ps;
	const struct smtp_param *notify, *orcpt;
	const char *why;

	if (smtp_params_parse(s, &ps, &why) < 0)
		return;
	notify = smtp_params_get(&ps, "NOTIFY");
	orcpt = smtp_params_get(&ps, "ORCPT");
	if (notify && notify->value)
		dsn_notify_parse(notify->value, &r->notify);
	if (orcpt && orcpt->value && dsn_orcpt_valid(orcpt->value))
		r->orcpt = xstrdup(orcpt->value);
	smtp_params_free(&ps);
}

/* "R <path> [params]", number i: accepted into the envelope or an N line. */
static int bs_rcpt(struct batch_server *b, const char *line, size_t i)
{
	static const char *const refusal[] = {
	    [POLICY_RCPT_RELAY_DENIED] = "550 5.7.1 Relay access denied",
	    [POLICY_RCPT_UNKNOWN] = "550 5.1.1 User unknown",
	};
	struct smtp_path path;
	const char *end, *why;
	enum policy_rcpt pr;

	if (strncmp(line, "R ", 2) != 0 || smtp_path_parse(line + 2, 0, &path, &end, &why) < 0)
		return -1;
	pr = policy_rcpt(b->p.cfg, b->p.may_relay, &path);
	if (b->m.env.nrcpt >= (size_t)b->p.cfg->max_recipients)
		bs_line(b, "N %s %zu 452 4.5.3 Too many recipients", b->m.id, i);
	else if (pr != POLICY_RCPT_OK)
		bs_line(b, "N %s %zu %s <%s>", b->m.id, i, refusal[pr], path.mailbox);
	else {
		q_env_add_rcpt(&b->m.env, path.mailbox);
		bs_rcpt_params(&b->m.env.rcpt[b->m.env.nrcpt - 1], end);
	}
	smtp_path_free(&path);
	return 0;
}

/* Splits the next CRLF line off *s (NUL-terminating it in place). */
static char *bs_next_line(char **s)
{
	char *line = *s, *crlf;

	if (line == NULL || *line == '\0')
		return NULL;
	crlf = strstr(line, "\r\n");
	if (crlf) {
		*crlf = '\0';
		*s = crlf + 2;
	} else {
		*s = NULL;
	}
	return line;
}

/* Where the message starts: 0, or the checkpoint the partial file holds. */
static void bs_msg_offset(struct batch_server *b, uint64_t offset)
{
	if (offset == 0) {
		bs_partial_drop(b, b->m.id);
		return;
	}
	if (bs_partial_load(b, offset) < 0) {
		bs_refuse(b, "451 4.6.0 No checkpoint at that offset; send it from 0");
		return;
	}
	b->m.got = offset;
}

/* The envelope lines of an M record. -1: malformed (a framing error). */
static int bs_envelope(struct batch_server *b, char *rest)
{
	char *line;
	size_t i = 0;

	if ((line = bs_next_line(&rest)) == NULL || bs_sender(b, line) < 0)
		return -1;
	while ((line = bs_next_line(&rest)) != NULL)
		if (bs_rcpt(b, line, i++) < 0)
			return -1;
	return i > 0 ? 0 : -1;
}

static void bs_rec_msg(struct batch_server *b, const struct bframe_rec *r)
{
	char *payload = xstrndup(r->data, r->len), *rest = payload, *head;
	unsigned long long size, offset;
	char id[BF_ID_MAX + 2];
	int n = 0;

	if (b->m.active) {
		bframe_dec_fail(b->dec, "message start before the end of the previous message");
		goto out;
	}
	bs_msg_reset(&b->m);
	head = bs_next_line(&rest);
	if (head == NULL || sscanf(head, "%65s %llu %llu%n", id, &size, &offset, &n) != 3 ||
	    head[n] != '\0' || !bframe_id_valid(id, strlen(id)) || offset > size) {
		bframe_dec_fail(b->dec, "malformed message start record");
		goto out;
	}
	memcpy(b->m.id, id, strlen(id) + 1); /* valid: at most BF_ID_MAX */
	b->m.size = size;
	if (bs_envelope(b, rest) < 0) {
		bframe_dec_fail(b->dec, "malformed envelope in a message start record");
		goto out;
	}
	b->m.active = 1;
	if (bs_done_find(b, b->m.id, b->m.done_qid, sizeof(b->m.done_qid))) {
		bs_partial_drop(b, b->m.id);
		b->m.skip = 1; /* its D records are dropped; A again at E */
	} else if (size > b->p.cfg->max_message_size)
		bs_refuse(b, "552 5.3.4 Message size exceeds fixed maximum message size");
	else if (b->m.env.nrcpt == 0)
		bs_refuse(b, "554 5.5.1 No valid recipients");
	else
		bs_msg_offset(b, offset);
out:
	free(payload);
}

static void bs_rec_data(struct batch_server *b, const struct bframe_rec *r)
{
	struct bs_msg *m = &b->m;

	if (m->skip)
		return;
	if (!m->active || m->got + r->len > m->size) {
		bframe_dec_fail(b->dec, m->active ? "data past the message size"
						  : "data outside a message");
		return;
	}
	buf_append(&m->content, r->data, r->len);
	m->got += r->len;
	if (m->got == m->size && m->fd < 0)
		return; /* whole in memory: nothing to resume */
	if (bs_partial_write(b, r->data, r->len) < 0) {
		log_warn("batch: %s: partial data of %s not kept: %s", b->addr, m->id,
			 strerror(errno));
		return;
	}
	bs_line(b, "C %s %llu", m->id, (unsigned long long)m->got);
}

/* Stages the complete message into the group commit. */
static void bs_stage(struct batch_server *b)
{
	struct bs_msg *m = &b->m;
	struct buf head = BUF_INIT;
	struct iovec iov[2];

	queue_new_id(m->env.id);
	m->env.message_id =
	    msg_header_value(m->content.data ? m->content.data : "", m->content.len, "Message-ID");
	m->env.client = xstrdup(b->addr);
	m->env.helo = xstrdup(b->helo);
	msg_received(&head, b->helo, b->addr, b->p.cfg->hostname, b->proto, m->env.id,
		     m->env.nrcpt == 1 ? m->env.rcpt[0].addr : NULL, clock_now());
	iov[0] = (struct iovec){head.data, head.len};
	iov[1] = (struct iovec){m->content.data, m->content.len};
	if (queue_batch_add(b->qb, &m->env, iov, 2) != Q_OK) {
		bs_refuse(b, errno == ENOSPC ? "452 4.3.1 Insufficient system storage"
					     : "451 4.3.0 Queue file write error");
		buf_free(&head);
		return;
	}
	buf_free(&head);
	if (b->nst == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 16;
		b->st = xrealloc(b->st, b->cap * sizeof(*b->st));
	}
	memcpy(b->st[b->nst].id, m->id, sizeof(m->id));
	b->st[b->nst++].env = m->env;
	memset(&m->env, 0, sizeof(m->env));
	bs_msg_reset(m);
}

static void bs_rec_end(struct batch_server *b, const struct bframe_rec *r)
{
	struct bs_msg *m = &b->m;
	char want[33] = "", *payload = xstrndup(r->data, r->len), *sp = strchr(payload, ' ');

	if (m->skip) {
		if (m->done_qid[0]) {
			log_info("batch: %s: %s was queued as %s in an earlier call: acknowledged "
				 "again, not queued twice",
				 b->addr, m->id, m->done_qid);
			bs_line(b, "A %s %s", m->id, m->done_qid);
			b->n_ok++;
			bs_msg_reset(m);
		}
		m->skip = 0;
		goto out;
	}
	if (!m->active || sp == NULL || (size_t)(sp - payload) != strlen(m->id) ||
	    strncmp(payload, m->id, strlen(m->id)) != 0 || m->got != m->size) {
		bframe_dec_fail(b->dec, "message end record out of place");
		goto out;
	}
	bframe_content_sum(m->content.data, m->content.len, want);
	if (strcmp(sp + 1, want) != 0) {
		bs_partial_drop(b, m->id);
		bs_refuse(b, "451 4.6.0 Checksum mismatch; send it from 0");
		m->skip = 0;
		goto out;
	}
	bs_stage(b);
out:
	free(payload);
}

static void bs_rec_drop(struct batch_server *b, const struct bframe_rec *r)
{
	char *id = xstrndup(r->data, r->len);

	if (bframe_id_valid(id, strlen(id)))
		bs_partial_drop(b, id);
	free(id);
}

static void bs_record(struct batch_server *b, const struct bframe_rec *r)
{
	switch (r->type) {
	case BF_MSG:
		bs_rec_msg(b, r);
		break;
	case BF_DATA:
		bs_rec_data(b, r);
		break;
	case BF_END:
		bs_rec_end(b, r);
		break;
	case BF_DROP:
		bs_rec_drop(b, r);
		break;
	case BF_BATCH_END:
		if (b->m.active && !b->m.skip)
			bframe_dec_fail(b->dec, "batch end inside a message");
		break;
	default:
		bframe_dec_fail(b->dec, "unknown record type");
	}
}

/* ---------------------------------------------------------- committing */

static void bs_queued(struct batch_server *b, struct bs_staged *s)
{
	const struct q_env *e = &s->env;
	const char *kv[] = {"qid",    e->id,   "from",	     e->sender,
			    "client", b->addr, "message-id", e->message_id ? e->message_id : "",
			    NULL};

	bs_line(b, "A %s %s", s->id, e->id);
	b->n_ok++;
	bs_done_mark(b, s->id, e->id);
	event_logkv(EV_MESSAGE_RECEIVED, kv,
		    "Message %s received from %s by XDMBATCH: sender <%s>, %zu recipient(s), %llu "
		    "bytes",
		    e->id, b->addr, e->sender, e->nrcpt, (unsigned long long)e->size);
	for (size_t i = 0; i < e->nrcpt; i++)
		track(TRK_RECEIVED, e->id, e->message_id, e->sender, e->rcpt[i].addr, b->addr);
	/* No fsync per message for this: a partial that a crash brings back is
	 * harmless (the done marker answers a resend; it expires). */
	char *partial = bs_partial_path(b, s->id);
	unlink(partial);
	free(partial);
	if (b->p.on_commit)
		b->p.on_commit(e->id, b->p.inbound, b->p.on_commit_arg);
}

/* One group commit for the messages finished in this read; then their A
 * (or N) lines. */
static void bs_commit(struct batch_server *b)
{
	struct q_result *res;
	size_t ok_before = b->n_ok;

	if (b->nst == 0)
		return;
	res = xcalloc(b->nst, sizeof(*res));
	queue_batch_commit(b->qb, res);
	for (size_t i = 0; i < b->nst; i++) {
		if (res[i].status == Q_OK)
			bs_queued(b, &b->st[i]);
		else {
			bs_line(b, "N %s * %s", b->st[i].id,
				res[i].err == ENOSPC ? "452 4.3.1 Insufficient system storage"
						     : "451 4.3.0 Queue file write error");
			b->n_refused++;
		}
		q_env_free(&b->st[i].env);
	}
	b->nst = 0;
	free(res);
	if (b->n_ok > ok_before) { /* the done markers, durable before the A lines leave */
		char *done = bs_done_path(b, NULL);
		fs_fsync_dir(done);
		free(done);
	}
}

/* ------------------------------------------------------------- the loop */

static void bs_free(struct batch_server *b)
{
	bs_commit(b);
	bs_msg_reset(&b->m);
	event_free(b->ev_input);
	bframe_dec_free(b->dec);
	queue_batch_free(b->qb);
	free(b->st);
	free(b->addr);
	free(b->helo);
	free(b->auth_user);
	free(b->proto);
	free(b->peer);
	free(b->dir);
	free(b);
}

/* The end segment was read: the final line, and the session is back. */
static void bs_finish(struct batch_server *b)
{
	void (*done)(short, void *) = b->p.done;
	void *arg = b->p.done_arg;
	const char *err = bframe_dec_error(b->dec);
	char wire[32], nmsg[32], nref[32];
	const char *kv[] = {"client", b->addr, "peer", b->peer, "reason", err ? err : "",
			    NULL,     NULL,    NULL,   NULL,	NULL};

	if (err == NULL && !bframe_dec_batch_end(b->dec))
		bframe_dec_fail(b->dec, "the stream ended before its end record");
	err = bframe_dec_error(b->dec);
	if (err) {
		kv[5] = err;
		event_logkv(EV_BATCH_ABORTED, kv, "XDMBATCH from %s (%s) aborted: %s", b->addr,
			    b->peer, err);
		bs_line(b, "451 4.6.0 XDMBATCH aborted: %s", err);
	} else {
		snprintf(wire, sizeof(wire), "%llu", (unsigned long long)b->wire);
		snprintf(nmsg, sizeof(nmsg), "%zu", b->n_ok);
		snprintf(nref, sizeof(nref), "%zu", b->n_refused);
		kv[4] = "messages", kv[5] = nmsg, kv[6] = "refused", kv[7] = nref;
		event_logkv(EV_BATCH_RECEIVED, kv,
			    "XDMBATCH from %s (%s): %zu message(s) queued, %zu refused, %s bytes",
			    b->addr, b->peer, b->n_ok, b->n_refused, wire);
		bs_line(b, "250 2.0.0 XDMBATCH done: %zu queued", b->n_ok);
	}
	bs_free(b);
	done(0, arg);
}

/* Feeds up to n segment bytes and handles the records they complete;
 * the bytes taken. */
static size_t bs_feed(struct batch_server *b, const unsigned char *p, size_t n)
{
	struct bframe_rec r;
	size_t total = 0;

	while (!bframe_dec_ended(b->dec)) {
		size_t used = 0, took = 0;

		if (n - total > 0) {
			bframe_dec_feed(b->dec, p + total, n - total, &used);
			total += used;
			b->wire += used;
		}
		while (bframe_dec_next(b->dec, &r) == 1) {
			bs_record(b, &r);
			took++;
		}
		if (used == 0 && took == 0)
			break;
	}
	return total;
}

/* Decodes what arrived, record by record. */
static void bs_read_cb(struct bufferevent *bev, void *arg)
{
	struct batch_server *b = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!bframe_dec_ended(b->dec)) {
		size_t n = evbuffer_get_length(in), used;

		if (n > BS_FEED_MAX)
			n = BS_FEED_MAX;
		used = bs_feed(b, evbuffer_pullup(in, (ev_ssize_t)n), n);
		evbuffer_drain(in, used);
		if (used == 0)
			break;
	}
	bs_commit(b);
	if (bframe_dec_ended(b->dec))
		bs_finish(b);
}

size_t batch_server_input(struct batch_server *b, const unsigned char *p, size_t n)
{
	size_t used = bs_feed(b, p, n);

	bs_commit(b);
	if (bframe_dec_ended(b->dec))
		bs_finish(b);
	return used;
}

/* The connection is gone: what came whole is committed, the rest keeps
 * its last checkpoint (event 2041). */
static void bs_lost(struct batch_server *b, const char *why)
{
	const char *kv[] = {"client", b->addr, "peer", b->peer, "reason", why, NULL};

	bs_commit(b);
	event_logkv(EV_BATCH_ABORTED, kv,
		    "XDMBATCH from %s (%s) aborted: %s; %zu message(s) queued before, the rest "
		    "is not (partial data keeps its last checkpoint)",
		    b->addr, b->peer, why, b->n_ok);
}

static void bs_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct batch_server *b = arg;
	void (*done)(short, void *) = b->p.done;
	void *darg = b->p.done_arg;

	bs_lost(b, what & BEV_EVENT_TIMEOUT ? "timeout" : "connection lost");
	bs_free(b);
	done(what, darg);
}

/* "DICT=n" */
static int bs_parse_arg(const char *arg, int *dict)
{
	char *end;
	long v;

	if (arg == NULL || strncasecmp(arg, "DICT=", 5) != 0)
		return -1;
	v = strtol(arg + 5, &end, 10);
	if (end == arg + 5 || *end != '\0' || v < 0 || v > 1000000)
		return -1;
	*dict = (int)v;
	return 0;
}

/* Input that came with the XDMBATCH command: read from the loop, so that
 * the session knows the batch before it can end. */
static void bs_input_cb(evutil_socket_t fd, short what, void *arg)
{
	struct batch_server *b = arg;

	bs_read_cb(b->bev, b);
}

static struct batch_server *bs_new(const struct batch_server_peer *p, struct bufferevent *bev)
{
	struct batch_server *b = xcalloc(1, sizeof(*b));

	b->p = *p;
	b->addr = xstrdup(p->addr);
	b->helo = xstrdup(p->helo ? p->helo : "");
	b->auth_user = p->auth_user ? xstrdup(p->auth_user) : NULL;
	b->proto = xstrdup(p->proto);
	b->peer = bs_peer_key(p->peer_key ? p->peer_key : p->auth_user ? p->auth_user : p->helo);
	b->dir = xasprintf("%s/batch/%s", queue_dir(p->q), b->peer);
	b->bev = bev;
	b->m.fd = -1;
	b->ev_input = event_new(bufferevent_get_base(bev), -1, 0, bs_input_cb, b);
	return b;
}

struct batch_server *batch_server_start(const struct batch_server_peer *p, struct bufferevent *bev,
					const char *arg, struct buf *reply)
{
	struct batch_server *b;
	int dict;

	if (bs_parse_arg(arg, &dict) < 0) {
		buf_puts(reply, "501 5.5.4 Syntax: XDMBATCH DICT=n");
		return NULL;
	}
	if (dict != 0 && bframe_dict(dict, &(size_t){0}) == NULL) {
		buf_printf(reply, "504 5.5.4 XDMBATCH dictionary %d not known", dict);
		return NULL;
	}
	b = bs_new(p, bev);
	if (bs_checkpoints(b, reply) < 0) {
		buf_reset(reply);
		buf_puts(reply, "451 4.3.0 XDMBATCH not possible now: partial data not readable");
		bs_free(b);
		return NULL;
	}
	b->dec = bframe_dec_new(dict);
	b->qb = queue_batch_new(p->q);
	evbuffer_add(bufferevent_get_output(bev), reply->data, reply->len);
	buf_reset(reply);
	bs_line(b, "250 2.0.0 XDMBATCH go ahead, dictionary %d", dict);
	bufferevent_setcb(bev, bs_read_cb, NULL, bs_event_cb, b);
	bufferevent_enable(bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		event_active(b->ev_input, EV_TIMEOUT, 0);
	return b;
}

struct batch_server *batch_server_duplex(const struct batch_server_peer *p, struct bufferevent *bev,
					 int dict, int hub, struct buf *ckpts)
{
	struct batch_server *b;

	if (dict != 0 && bframe_dict(dict, &(size_t){0}) == NULL)
		return NULL;
	b = bs_new(p, bev);
	b->duplex = 1;
	b->listed_as_reply = hub;
	if (bs_checkpoints(b, ckpts) < 0) {
		bs_free(b);
		return NULL;
	}
	b->dec = bframe_dec_new(dict);
	b->qb = queue_batch_new(p->q);
	return b;
}

void batch_server_lost(struct batch_server *b, const char *why)
{
	if (b == NULL)
		return;
	bs_lost(b, why);
	batch_server_abandon(b);
}

void batch_server_abandon(struct batch_server *b)
{
	if (b == NULL)
		return;
	if (!b->duplex)
		bufferevent_setcb(b->bev, NULL, NULL, NULL, NULL);
	bs_free(b);
}
