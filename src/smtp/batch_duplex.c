/* XDMBATCH DUPLEX: one connection, two batches. The sender of ours is a
 * batch_client, the receiver of the peer's a batch_server, both in duplex
 * mode; this file reads the peer's frames (ack frames to the sender, batch
 * segments to the receiver) and ends the exchange once both are over. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "smtp/batch_client.h"
#include "smtp/batch_duplex.h"
#include "smtp/batch_frame.h"

#define BD_FEED_MAX (BF_SEG_MAX + 4)
#define BD_CMD_MAX  500 /* the DUPLEX command, CRLF apart (RFC 5321: 512) */

enum bd_in { BD_HDR, BD_ACK, BD_DATA };

struct batch_duplex {
	struct bufferevent *bev;
	struct batch_duplex_params p;
	struct batch_server *rx; /* NULL once its final line is written */
	struct batch_client *tx; /* NULL once its final line came */
	int frames;		 /* the go-ahead is behind: the input is frames */
	int fallback;		 /* the hub refused the command */
	enum bd_in in;
	unsigned char hdr[4];
	size_t nhdr;
	uint32_t left; /* bytes of the current frame still to come */
	struct buf lines;
	struct event *ev_end, *ev_input;
	int ending;
	enum batch_duplex_end how;
	char *text;
};

static void bd_end(struct batch_duplex *d, enum batch_duplex_end how, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bd_end(struct batch_duplex *d, enum batch_duplex_end how, const char *fmt, ...)
{
	struct buf t = BUF_INIT;
	va_list ap;

	if (d->ending)
		return;
	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	d->ending = 1;
	d->how = how;
	d->text = buf_steal(&t);
	bufferevent_setcb(d->bev, NULL, NULL, NULL, NULL);
	event_active(d->ev_end, EV_TIMEOUT, 0);
}

static void bd_free(struct batch_duplex *d)
{
	batch_server_abandon(d->rx);
	batch_client_free(d->tx);
	event_free(d->ev_end);
	event_free(d->ev_input);
	buf_free(&d->lines);
	free(d->text);
	free(d);
}

static void bd_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct batch_duplex *d = arg;

	if (d->how == BD_LOST) { /* the held mail's receiver logs it, as alone */
		batch_server_lost(d->rx, d->text);
		d->rx = NULL;
	}
	d->p.end(d->how, d->text, d->p.arg);
	bd_free(d);
}

/* Both batches over: the exchange is. */
static void bd_check(struct batch_duplex *d)
{
	if (d->rx == NULL && d->tx == NULL && !d->ending)
		bd_end(d, BD_DONE, "both batches acknowledged");
}

/* ------------------------------------------------------------ sender */

static void bd_rcpt(void *arg, size_t i, size_t r, int status, const char *reply)
{
	struct batch_duplex *d = arg;

	smtpc_result_ops.rcpt(d->p.tx, i, r, status, reply);
}

static void bd_msg(void *arg, size_t i, int status, const char *reply)
{
	struct batch_duplex *d = arg;

	smtpc_result_ops.msg(d->p.tx, i, status, reply);
}

static void bd_tx_end(void *arg, enum batch_client_end how, const char *text)
{
	struct batch_duplex *d = arg;

	if (how == BC_LOST)
		return bd_end(d, BD_LOST, "%s", text);
	if (!batch_client_streaming(d->tx)) { /* the command was refused */
		d->fallback = 1;
		return bd_end(d, BD_FALLBACK, "%s", text);
	}
	log_info("batch: duplex: our batch %s: %s", how == BC_DONE ? "done" : "aborted", text);
	batch_client_free(d->tx);
	d->tx = NULL;
	bd_check(d);
}

static const struct batch_client_ops bd_tx_ops = {bd_rcpt, bd_msg, bd_tx_end};

static struct batch_client *bd_tx_start(struct batch_duplex *d, const char *extra)
{
	struct batch_client_options o = {.server_version = 1,
					 .server_dict = d->p.dict,
					 .chunk = d->p.chunk,
					 .timeout_ms = d->p.timeout_ms,
					 .duplex = 1,
					 .cmd_extra = extra,
					 .no_cmd = extra == NULL};
	size_t n;
	struct smtpc_msg *msgs = smtpc_jobs(d->p.tx, &n);
	int *skip = xcalloc(n ? n : 1, sizeof(*skip));
	struct batch_client *b = batch_client_start(d->bev, msgs, n, skip, &o, &bd_tx_ops, d);

	free(skip);
	return b;
}

/* ---------------------------------------------------------- receiver */

static void bd_rx_done(short what, void *arg)
{
	struct batch_duplex *d = arg;

	d->rx = NULL; /* batch_server.c freed it */
	bd_check(d);
}

/* --------------------------------------------------------- the input */

/* Complete lines of ack frames go to the sender. */
static void bd_lines(struct batch_duplex *d)
{
	size_t off = 0;
	char *nl;

	while (!d->ending && (nl = memchr(d->lines.data + off, '\n', d->lines.len - off))) {
		size_t len = (size_t)(nl - (d->lines.data + off));
		char *line = xstrndup(d->lines.data + off, len && nl[-1] == '\r' ? len - 1 : len);

		off += len + 1;
		if (d->tx)
			batch_client_line(d->tx, line, strlen(line));
		free(line);
	}
	memmove(d->lines.data, d->lines.data + off, d->lines.len - off);
	d->lines.len -= off;
}

/* A frame header is complete. */
static void bd_header(struct batch_duplex *d)
{
	uint32_t v = (uint32_t)d->hdr[0] << 24 | (uint32_t)d->hdr[1] << 16 |
		     (uint32_t)d->hdr[2] << 8 | d->hdr[3];

	d->nhdr = 0;
	if (v & BF_ACK_FLAG) {
		d->left = v & ~BF_ACK_FLAG;
		d->in = d->left ? BD_ACK : BD_HDR;
		if (d->left > BF_ACK_MAX)
			bd_end(d, BD_LOST, "XDMBATCH DUPLEX: ack frame of %u bytes", d->left);
		return;
	}
	if (d->rx == NULL || v > BF_SEG_MAX)
		return bd_end(d, BD_LOST, "XDMBATCH DUPLEX: %s",
			      d->rx ? "segment too long" : "batch data after its end");
	d->left = v;
	d->in = v ? BD_DATA : BD_HDR;
	batch_server_input(d->rx, d->hdr, 4); /* the end segment ends the receiver */
}

/* Takes what it can of the input; 0 when it must wait. */
static int bd_step(struct batch_duplex *d, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in), n, used;

	if (d->in == BD_HDR) {
		n = 4 - d->nhdr < avail ? 4 - d->nhdr : avail;
		evbuffer_remove(in, d->hdr + d->nhdr, n);
		if ((d->nhdr += n) == 4)
			bd_header(d);
		return 1;
	}
	n = d->left < avail ? d->left : avail;
	if (d->in == BD_ACK) {
		buf_reserve(&d->lines, n);
		evbuffer_remove(in, d->lines.data + d->lines.len, n);
		d->lines.len += n;
		d->left -= (uint32_t)n;
		d->in = d->left ? BD_ACK : BD_HDR;
		bd_lines(d);
		return 1;
	}
	if (n > BD_FEED_MAX)
		n = BD_FEED_MAX;
	used = batch_server_input(d->rx, evbuffer_pullup(in, (ev_ssize_t)n), n);
	evbuffer_drain(in, used);
	d->left -= (uint32_t)used;
	d->in = d->left ? BD_DATA : BD_HDR;
	return used > 0;
}

/* The reply to AUTH, when the command went behind it: 235, or the end. */
static void bd_auth_line(struct batch_duplex *d, const char *line, size_t len)
{
	if (len >= 4 && line[3] == '-')
		return;
	d->p.auth_pending = 0;
	if (len < 3 || strncmp(line, "235", 3) != 0)
		bd_end(d, BD_LOST, "AUTH refused: %.200s", line);
}

/* The client end, before the go-ahead: reply lines. */
static void bd_reply_lines(struct batch_duplex *d, struct evbuffer *in)
{
	size_t len;
	char *line;

	while (!d->ending && !d->frames && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF))) {
		if (d->p.auth_pending) {
			bd_auth_line(d, line, len);
			free(line);
			continue;
		}
		batch_client_line(d->tx, line, len);
		free(line);
		d->frames = !d->ending && batch_client_streaming(d->tx);
	}
}

static void bd_read_cb(struct bufferevent *bev, void *arg)
{
	struct batch_duplex *d = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (!d->frames)
		bd_reply_lines(d, in);
	while (d->frames && !d->ending && (d->rx || d->tx) && evbuffer_get_length(in) > 0)
		if (!bd_step(d, in))
			break;
}

static void bd_input_cb(evutil_socket_t fd, short what, void *arg)
{
	struct batch_duplex *d = arg;

	bd_read_cb(d->bev, d);
}

static void bd_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct batch_duplex *d = arg;

	bd_end(d, BD_LOST, "XDMBATCH DUPLEX: %s",
	       what & BEV_EVENT_TIMEOUT ? "timeout" : "connection lost");
}

/* ------------------------------------------------------------- start */

static struct batch_duplex *bd_new(struct bufferevent *bev, const struct batch_duplex_params *p)
{
	struct batch_duplex *d = xcalloc(1, sizeof(*d));
	struct event_base *base = bufferevent_get_base(bev);

	d->bev = bev;
	d->p = *p;
	d->p.domains = NULL;
	d->p.rx.done = bd_rx_done;
	d->p.rx.done_arg = d;
	d->ev_end = event_new(base, -1, 0, bd_end_cb, d);
	d->ev_input = event_new(base, -1, 0, bd_input_cb, d);
	return d;
}

struct batch_duplex *batch_duplex_client(struct bufferevent *bev,
					 const struct batch_duplex_params *p)
{
	struct batch_duplex *d = bd_new(bev, p);
	struct buf ck = BUF_INIT, cmd = BUF_INIT;

	d->rx = batch_server_duplex(&d->p.rx, bev, p->dict, 0, &ck);
	if (d->rx == NULL) {
		buf_free(&ck);
		bd_free(d);
		return NULL;
	}
	buf_printf(&cmd, "DUPLEX=%s", p->domains ? p->domains : "");
	if (ck.len && cmd.len + ck.len + 30 < BD_CMD_MAX) /* else nothing resumes this time */
		buf_printf(&cmd, " CKPT=%s", buf_cstr(&ck));
	d->tx = bd_tx_start(d, buf_cstr(&cmd));
	buf_free(&ck);
	buf_free(&cmd);
	bufferevent_setcb(bev, bd_read_cb, NULL, bd_event_cb, d);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		event_active(d->ev_input, EV_TIMEOUT, 0);
	return d;
}

/* "id:offset,..." into the sender's checkpoints. */
static void bd_resume_list(struct batch_client *tx, const char *list)
{
	char *copy = xstrdup(list), *save = NULL;

	for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(it, ':');

		if (colon == NULL)
			continue;
		*colon = '\0';
		batch_client_resume(tx, it, strtoull(colon + 1, NULL, 10));
	}
	free(copy);
}

struct batch_duplex *batch_duplex_hub(struct bufferevent *bev, const struct batch_duplex_params *p,
				      const char *ckpt, struct buf *reply)
{
	struct batch_duplex *d;
	struct evbuffer *out = bufferevent_get_output(bev);

	if (p->dict != 0 && bframe_dict(p->dict, &(size_t){0}) == NULL) {
		buf_printf(reply, "504 5.5.4 XDMBATCH dictionary %d not known", p->dict);
		return NULL;
	}
	d = bd_new(bev, p);
	d->rx = batch_server_duplex(&d->p.rx, bev, p->dict, 1, reply);
	if (d->rx == NULL) {
		buf_reset(reply);
		buf_puts(reply, "451 4.3.0 XDMBATCH not possible now: partial data not readable");
		bd_free(d);
		return NULL;
	}
	buf_printf(reply, "250 2.0.0 XDMBATCH DUPLEX go ahead, dictionary %d\r\n", p->dict);
	evbuffer_add(out, reply->data, reply->len);
	buf_reset(reply);
	d->tx = bd_tx_start(d, NULL);
	if (ckpt)
		bd_resume_list(d->tx, ckpt);
	d->frames = 1;
	batch_client_go(d->tx);
	bufferevent_setcb(bev, bd_read_cb, NULL, bd_event_cb, d);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		event_active(d->ev_input, EV_TIMEOUT, 0);
	return d;
}

void batch_duplex_abandon(struct batch_duplex *d)
{
	if (d == NULL)
		return;
	bufferevent_setcb(d->bev, NULL, NULL, NULL, NULL);
	if (!d->ending) { /* the carrier went, or the session: as a drop */
		batch_server_lost(d->rx, "XDMBATCH DUPLEX: the call or session ended");
		d->rx = NULL;
	}
	bd_free(d);
}

/* One "KEY=value" word of the command: its value (allocated). */
static char *bd_word(const char *arg, const char *key)
{
	size_t klen = strlen(key);

	for (const char *w = arg; w && *w; w = strchr(w, ' ')) {
		w += strspn(w, " ");
		if (strncasecmp(w, key, klen) == 0 &&
		    (w[klen] == '=' || w[klen] == ' ' || !w[klen]))
			return w[klen] == '=' ? xstrndup(w + klen + 1, strcspn(w + klen + 1, " "))
					      : xstrdup("");
	}
	return NULL;
}

int batch_duplex_parse(const char *arg, int *dict, char **domains, char **ckpt)
{
	char *d = bd_word(arg, "DICT"), *end;
	long v;

	*domains = *ckpt = NULL;
	if (d == NULL)
		return -1;
	v = strtol(d, &end, 10);
	if (end == d || *end != '\0' || v < 0 || v > 1000000) {
		free(d);
		return -1;
	}
	free(d);
	*dict = (int)v;
	if ((*domains = bd_word(arg, "DUPLEX")) == NULL)
		return 0;
	*ckpt = bd_word(arg, "CKPT");
	return 1;
}
