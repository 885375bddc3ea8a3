/* XDMBATCH sender (docs/batch-protocol.md): "XDMBATCH DICT=n", the
 * server's checkpoints, then the messages (urgent first, then by priority,
 * resumed before new, small before large) as M/D/E records in one zstd
 * stream, data cut at the checkpoint size; A/N/C lines are read as they
 * come, without waiting between messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "queue/retry.h"
#include "smtp/batch_client.h"
#include "smtp/batch_frame.h"
#include "smtp/dsn.h"

#define BC_LINE_MAX 4096

struct bc_ckpt {
	char id[BF_ID_MAX + 1];
	unsigned long long offset;
};

struct batch_client {
	struct bufferevent *bev;
	struct smtpc_msg *msgs;
	size_t nmsgs;
	struct batch_client_options o;
	const struct batch_client_ops *ops;
	void *arg;
	char (*ids)[BF_ID_MAX + 1];
	int *inc;		  /* in this batch */
	int *final;		  /* A or N * seen */
	unsigned long long *from; /* resume offset */
	struct bc_ckpt *ck;
	size_t nck;
	struct smtpc_reply reply;
	int streaming; /* the go-ahead came; A/N/C lines now */
	int dict;
	size_t unflushed; /* content bytes put since the last flush */
	struct event *ev_timer;
	uint64_t wire, raw;
};

static void bc_hex(const unsigned char *md, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void batch_client_msg_id(const struct smtpc_msg *m, char *out, size_t outlen)
{
	const struct q_env *e = m->env;
	EVP_MD_CTX *x = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char hex[9];

	EVP_DigestInit_ex(x, EVP_sha256(), NULL);
	EVP_DigestUpdate(x, e->sender, strlen(e->sender) + 1);
	for (size_t i = 0; i < e->nrcpt; i++)
		EVP_DigestUpdate(x, e->rcpt[i].addr, strlen(e->rcpt[i].addr) + 1);
	EVP_DigestUpdate(x, m->content->data ? m->content->data : "", m->content->len);
	EVP_DigestFinal_ex(x, md, &n);
	EVP_MD_CTX_free(x);
	bc_hex(md, 4, hex);
	snprintf(out, outlen, "%s.%s", e->id, hex);
}

void batch_client_bytes(const struct batch_client *b, uint64_t *wire, uint64_t *raw)
{
	*wire = b->wire;
	*raw = b->raw;
}

static void bc_end(struct batch_client *b, enum batch_client_end how, const char *text)
{
	event_del(b->ev_timer);
	if (!b->o.duplex)
		bufferevent_setcb(b->bev, NULL, NULL, NULL, NULL);
	b->ops->end(b->arg, how, text); /* may free b */
}

static void bc_timer_arm(struct batch_client *b)
{
	int ms = b->o.timeout_ms > 0 ? b->o.timeout_ms : 600000;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(b->ev_timer, &tv);
}

/* --------------------------------------------------------- the stream */

/* M record: "id size offset", F line, R lines (docs/batch-protocol.md 4.2). */
static void bc_envelope(struct batch_client *b, size_t i, struct buf *out)
{
	const struct smtpc_msg *m = &b->msgs[i];
	const struct q_env *e = m->env;
	size_t n = m->rcpt_idx ? m->nrcpt_idx : e->nrcpt;

	buf_printf(out, "%s %zu %llu\r\nF <%s>", b->ids[i], m->content->len, b->from[i], e->sender);
	if (e->ret == Q_RET_FULL || e->ret == Q_RET_HDRS)
		buf_puts(out, e->ret == Q_RET_FULL ? " RET=FULL" : " RET=HDRS");
	if (e->envid)
		buf_printf(out, " ENVID=%s", e->envid);
	buf_puts(out, "\r\n");
	for (size_t r = 0; r < n; r++) {
		const struct q_rcpt *rc = &e->rcpt[m->rcpt_idx ? m->rcpt_idx[r] : r];

		buf_printf(out, "R <%s>", rc->addr);
		if (rc->notify) {
			buf_puts(out, " NOTIFY=");
			dsn_notify_format(rc->notify, out);
		}
		if (rc->orcpt)
			buf_printf(out, " ORCPT=%s", rc->orcpt);
		buf_puts(out, "\r\n");
	}
}

static int bc_put_msg(struct batch_client *b, struct bframe_enc *enc, size_t i, struct buf *out)
{
	struct smtpc_msg *m = &b->msgs[i];
	const struct buf *c = m->content;
	struct buf rec = BUF_INIT;
	char hex[33];
	int rc = 0;

	bc_envelope(b, i, &rec);
	rc |= bframe_enc_put(enc, BF_MSG, rec.data, rec.len, 0, out);
	for (size_t off = b->from[i]; off < c->len && rc == 0; off += b->o.chunk) {
		size_t n = c->len - off < b->o.chunk ? c->len - off : b->o.chunk;
		/* a message of several records: each is a checkpoint, flushed */
		int ckpt = c->len - b->from[i] > b->o.chunk;

		rc |= bframe_enc_put(enc, BF_DATA, c->data + off, n, ckpt, out);
		b->unflushed = ckpt ? 0 : b->unflushed + n;
	}
	bframe_content_sum(c->data, c->len, hex);
	buf_reset(&rec);
	buf_printf(&rec, "%s %s", b->ids[i], hex);
	/* Small messages are flushed together, once a checkpoint's worth is in:
	 * each flush costs the compressor a block of its own (docs 5). */
	rc |= bframe_enc_put(enc, BF_END, rec.data, rec.len, b->unflushed >= b->o.chunk, out);
	if (b->unflushed >= b->o.chunk)
		b->unflushed = 0;
	m->attempted = 1;
	m->data_sent = 1;
	buf_free(&rec);
	return rc;
}

/* Sort key: urgent first, then priority, resumed first, then smaller. */
static long long bc_key(const struct batch_client *b, size_t i)
{
	const struct buf *c = b->msgs[i].content;
	long long prio = retry_priority_of(c->data ? c->data : "", c->len);

	return (2 - prio) * (1LL << 50) + (b->from[i] ? 0 : 1LL << 49) + (long long)c->len;
}

static const struct batch_client *bc_sorting;
static int bc_cmp(const void *x, const void *y)
{
	long long a = bc_key(bc_sorting, *(const size_t *)x),
		  c = bc_key(bc_sorting, *(const size_t *)y);

	return a < c ? -1 : a > c;
}

/* X records for checkpoints of messages this batch does not have. */
static int bc_put_drops(struct batch_client *b, struct bframe_enc *enc, struct buf *out)
{
	int rc = 0;

	for (size_t k = 0; k < b->nck; k++) {
		size_t i = 0;

		while (i < b->nmsgs && !(b->inc[i] && strcmp(b->ids[i], b->ck[k].id) == 0))
			i++;
		if (i == b->nmsgs)
			rc |=
			    bframe_enc_put(enc, BF_DROP, b->ck[k].id, strlen(b->ck[k].id), 0, out);
		else
			b->from[i] =
			    b->ck[k].offset <= b->msgs[i].content->len ? b->ck[k].offset : 0;
	}
	return rc;
}

/* The whole batch, compressed, into the output buffer. */
static void bc_send(struct batch_client *b)
{
	struct bframe_enc *enc = bframe_enc_new(b->dict);
	size_t *order = xcalloc(b->nmsgs ? b->nmsgs : 1, sizeof(*order)), n = 0;
	struct buf out = BUF_INIT;
	int rc = enc ? bc_put_drops(b, enc, &out) : -1;

	for (size_t i = 0; i < b->nmsgs; i++)
		if (b->inc[i])
			order[n++] = i;
	bc_sorting = b;
	qsort(order, n, sizeof(*order), bc_cmp);
	for (size_t k = 0; k < n && rc == 0; k++)
		rc |= bc_put_msg(b, enc, order[k], &out);
	if (rc == 0 && bframe_enc_finish(enc, &out) == 0) {
		b->raw = bframe_enc_raw(enc);
	} else { /* an end segment without Z: the server aborts, plain SMTP follows */
		log_warn("smtpc: XDMBATCH: compression failed; the batch is abandoned");
		buf_append(&out, "\0\0\0\0", 4);
	}
	b->wire += out.len;
	evbuffer_add(bufferevent_get_output(b->bev), out.data, out.len);
	buf_free(&out);
	bframe_enc_free(enc);
	free(order);
}

/* ------------------------------------------------------------- replies */

static size_t bc_find(const struct batch_client *b, const char *id, size_t len)
{
	for (size_t i = 0; i < b->nmsgs; i++)
		if (b->inc[i] && strlen(b->ids[i]) == len && strncmp(b->ids[i], id, len) == 0)
			return i;
	return (size_t)-1;
}

static int bc_class(int code)
{
	return code >= 200 && code < 300   ? Q_OK
	       : code >= 500 && code < 600 ? Q_PERMFAIL
					   : Q_TEMPFAIL;
}

/* "A id qid" */
static int bc_line_ack(struct batch_client *b, const char *s)
{
	size_t n = strcspn(s, " "), i = bc_find(b, s, n);
	char *reply;

	if (i == (size_t)-1 || s[n] != ' ' || b->final[i])
		return -1;
	reply = xasprintf("250 2.0.0 Ok: queued as %s (XDMBATCH)", s + n + 1);
	b->final[i] = 1;
	b->ops->msg(b->arg, i, Q_OK, reply);
	free(reply);
	return 0;
}

/* "N id *|r code text" */
static int bc_line_nak(struct batch_client *b, const char *s)
{
	size_t n = strcspn(s, " "), i = bc_find(b, s, n);
	const char *who = s + n + 1, *text;
	int code;

	if (i == (size_t)-1 || s[n] != ' ' || b->final[i])
		return -1;
	text = who + strcspn(who, " ");
	if (*text != ' ' || sscanf(text + 1, "%3d", &code) != 1 || code < 400 || code > 599)
		return -1;
	if (*who == '*') {
		b->final[i] = 1;
		b->ops->msg(b->arg, i, bc_class(code), text + 1);
	} else {
		size_t r = strtoul(who, NULL, 10), nres = b->msgs[i].nres;

		if (r >= nres)
			return -1;
		b->ops->rcpt(b->arg, i, r, bc_class(code), text + 1);
	}
	return 0;
}

/* One line of the stream phase; 1 when it was the final reply. */
static int bc_stream_line(struct batch_client *b, const char *line, size_t len)
{
	if (len > 2 && line[0] == 'A' && line[1] == ' ')
		return bc_line_ack(b, line + 2) < 0 ? -1 : 0;
	if (len > 2 && line[0] == 'N' && line[1] == ' ')
		return bc_line_nak(b, line + 2) < 0 ? -1 : 0;
	if (len > 2 && line[0] == 'C' && line[1] == ' ')
		return 0;
	if (len >= 4 && line[0] >= '2' && line[0] <= '5' && line[3] == ' ') {
		bc_end(b, line[0] == '2' ? BC_DONE : BC_FALLBACK, line);
		return 1;
	}
	return -1;
}

/* "250-CKPT id offset" lines of the go-ahead. */
static void bc_ckpt_line(struct batch_client *b, const char *line)
{
	struct bc_ckpt ck;

	if (strncmp(line, "250-CKPT ", 9) != 0 ||
	    sscanf(line + 9, "%64s %llu", ck.id, &ck.offset) != 2)
		return;
	b->ck = xrealloc(b->ck, (b->nck + 1) * sizeof(*b->ck));
	b->ck[b->nck++] = ck;
}

/* One line of the reply to XDMBATCH; 1 when the batch ended. */
static int bc_go_line(struct batch_client *b, const char *line, size_t len)
{
	int rc = smtpc_reply_line(&b->reply, line, len);

	if (rc < 0) {
		bc_end(b, BC_LOST, "malformed reply to XDMBATCH");
		return 1;
	}
	bc_ckpt_line(b, line);
	if (rc == 0)
		return 0;
	if (b->reply.code != 250) {
		bc_end(b, BC_FALLBACK, buf_cstr(&b->reply.text));
		return 1;
	}
	b->streaming = 1;
	bc_send(b);
	return 0;
}

/* One line of the server's; 1 when the batch ended. */
static int bc_line(struct batch_client *b, const char *line, size_t len)
{
	int rc = b->streaming ? bc_stream_line(b, line, len) : bc_go_line(b, line, len);

	if (rc < 0) {
		char *why = xasprintf("XDMBATCH: unexpected line: %.100s", line);

		bc_end(b, BC_LOST, why);
		free(why);
		return 1;
	}
	return rc;
}

void batch_client_line(struct batch_client *b, const char *line, size_t len)
{
	if (bc_line(b, line, len) == 0)
		bc_timer_arm(b);
}

static void bc_read_cb(struct bufferevent *bev, void *arg)
{
	struct batch_client *b = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		int rc = bc_line(b, line, len);

		free(line);
		if (rc == 1)
			return;
	}
	if (evbuffer_get_length(in) > BC_LINE_MAX) {
		bc_end(b, BC_LOST, "XDMBATCH: reply line too long");
		return;
	}
	bc_timer_arm(b);
}

static void bc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct batch_client *b = arg;

	bc_end(b, BC_LOST,
	       what & BEV_EVENT_TIMEOUT ? "timeout in XDMBATCH" : "connection lost in XDMBATCH");
}

static void bc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	bc_end(arg, BC_LOST, "timeout waiting for XDMBATCH acknowledgements");
}

struct batch_client *batch_client_start(struct bufferevent *bev, struct smtpc_msg *msgs,
					size_t nmsgs, const int *skip,
					const struct batch_client_options *o,
					const struct batch_client_ops *ops, void *arg)
{
	struct batch_client *b = xcalloc(1, sizeof(*b));
	size_t n = nmsgs ? nmsgs : 1;

	b->bev = bev;
	b->msgs = msgs;
	b->nmsgs = nmsgs;
	b->o = *o;
	if (b->o.chunk == 0 || b->o.chunk > 1024 * 1024)
		b->o.chunk = 16384;
	b->ops = ops;
	b->arg = arg;
	b->ids = xcalloc(n, sizeof(*b->ids));
	b->inc = xcalloc(n, sizeof(*b->inc));
	b->final = xcalloc(n, sizeof(*b->final));
	b->from = xcalloc(n, sizeof(*b->from));
	for (size_t i = 0; i < nmsgs; i++) {
		b->inc[i] = !skip[i];
		batch_client_msg_id(&msgs[i], b->ids[i], sizeof(b->ids[i]));
	}
	b->dict = o->server_dict == BF_DICT_VERSION ? BF_DICT_VERSION : 0;
	b->ev_timer = evtimer_new(bufferevent_get_base(bev), bc_timer_cb, b);
	if (!o->duplex)
		bufferevent_setcb(bev, bc_read_cb, NULL, bc_event_cb, b);
	if (!o->no_cmd)
		evbuffer_add_printf(bufferevent_get_output(bev), "XDMBATCH DICT=%d%s%s\r\n",
				    b->dict, o->cmd_extra ? " " : "",
				    o->cmd_extra ? o->cmd_extra : "");
	b->o.cmd_extra = NULL;
	bc_timer_arm(b);
	return b;
}

void batch_client_resume(struct batch_client *b, const char *id, unsigned long long offset)
{
	struct bc_ckpt ck;

	if (!bframe_id_valid(id, strlen(id)))
		return;
	snprintf(ck.id, sizeof(ck.id), "%s", id);
	ck.offset = offset;
	b->ck = xrealloc(b->ck, (b->nck + 1) * sizeof(*b->ck));
	b->ck[b->nck++] = ck;
}

void batch_client_go(struct batch_client *b)
{
	b->streaming = 1;
	bc_send(b);
}

int batch_client_streaming(const struct batch_client *b)
{
	return b->streaming;
}

void batch_client_free(struct batch_client *b)
{
	if (b == NULL)
		return;
	event_free(b->ev_timer);
	buf_free(&b->reply.text);
	free(b->ids);
	free(b->inc);
	free(b->final);
	free(b->from);
	free(b->ck);
	free(b);
}
