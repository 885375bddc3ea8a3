/* data = direct: SMTP on the serial line after CONNECT. The retrieval client's
 * ATRN dialogue runs on the line; the SMTP client engine (outbound mail) and
 * our SMTP server (held mail) borrow it through socketpair relays, which keep
 * the engine's QUIT off the line. Invariant: a recipient changes state only
 * on the hub's final reply for it; the rest stays queued for the next call. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "link/carrier_watch.h"
#include "deliver/delivery.h"
#include "dialup/atrn.h"
#include "dialup/direct.h"
#include "mail/event.h"
#include "deliver/held.h"
#include "dialup/odmr_client.h"
#include "dialup/retrieve_client.h"
#include "deliver/outbound.h"
#include "mail/routes.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "queue/qindex.h"
#include "smtp/batch_duplex.h"
#include "smtp/batch_frame.h"
#include "smtp/dsn.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_server.h"

#define DIRECT_HANGUP_WAIT_S 10	   /* after the hub's QUIT: wait for its hang-up */
#define DIRECT_DRAIN_MS	     2000  /* at the end: how long a queued QUIT may take to leave */
#define DIRECT_LINE_HIGH     16384 /* bytes waiting for the tty: stop reading the engine */
#define DIRECT_LINE_LOW	     4096  /* ... read it again once the line took it down to this */

enum dstate {
	DS_DIALOGUE, /* the retrieval client reads the line */
	DS_SEND,     /* the engine's turn: outbound mail */
	DS_RECV,     /* the server's turn: held mail after ATRN */
	DS_DUPLEX,   /* XDMBATCH DUPLEX: both at once */
	DS_END
};

struct direct {
	struct direct_ctx ctx;
	enum dstate state;
	struct bufferevent *line; /* the tty, or the TLS filter over it */
	struct bufferevent *raw;  /* the tty (below TLS): NO CARRIER is watched here */
	int timeout_s;
	struct retrieve_client *rc; /* the dialogue on the line */
	struct bufferevent *peer;   /* our end of the relay to the engine or the server */
	struct buf lbuf;	    /* engine bytes not yet a full line */
	struct direct_relay rel;
	struct held_batch b; /* the outbound mail for the line */
	struct held_peer peer_info;
	char *label;
	char *line_peer; /* "line:ENTRY": the hub, for the receiver of its batch */
	struct smtpc *c;
	struct smtp_adopted *adopted;
	unsigned msgs_ok;
	unsigned long long bytes_out;
	struct event *ev_end;
	struct carrier_watch cw; /* NO CARRIER + silence on the raw bytes */
	int end_ok;
	char *end_text;
	struct batch_duplex *dx; /* XDMBATCH DUPLEX running */
	int quit;		 /* the adopted session saw the hub's QUIT; ends when flushed */
	int closing;		 /* ... flushed: waiting for the hub to hang up */
};

static void direct_step(struct direct *x, const char *what, int code, const char *text)
{
	char c[8];
	const char *kv[] = {"entry", x->ctx.entry, "code", c, NULL};

	snprintf(c, sizeof(c), "%d", code);
	event_logkv(EV_RETRIEVE_ATRN, kv, "SMTP over the line of %s: %s%s%s", x->ctx.entry, what,
		    text ? ": " : "", text ? text : "");
}

static void direct_step_cb(void *arg, const char *what, int code, const char *text)
{
	direct_step(arg, what, code, text);
}

/* --- the relay's bookkeeping --------------------------------------------------- */

void direct_relay_reply(struct direct_relay *r, const char *line, size_t n)
{
	if (r->batch >= 2) { /* A/N/C lines; the final reply ends the batch */
		if (r->batch == 3 && n >= 4 && line[3] == ' ' && line[0] >= '2' && line[0] <= '5')
			r->batch = 0;
		return;
	}
	if (n >= 4 && line[3] == '-')
		return;
	if (r->batch == 1 && r->answered + 1 == r->batch_cmd)
		r->batch = n >= 3 && strncmp(line, "250", 3) == 0 ? 2 : 0;
	r->answered++;
	if (r->data_cmd && r->answered == r->data_cmd) {
		r->data = n >= 3 && strncmp(line, "354", 3) == 0;
		r->data_cmd = 0;
	}
}

/* XDMBATCH segments pass as they are, up to and with the end segment
 * (length 0); returns the bytes taken. */
static size_t direct_relay_segments(struct direct_relay *r, const char *s, size_t n,
				    struct buf *line_out)
{
	size_t take;

	if (r->seg_left == 0) {
		r->seg_hdr[r->seg_hdr_n++] = (unsigned char)s[0];
		buf_append(line_out, s, 1);
		if (r->seg_hdr_n < 4)
			return 1;
		r->seg_hdr_n = 0;
		r->seg_left = (uint64_t)r->seg_hdr[0] << 24 | (uint64_t)r->seg_hdr[1] << 16 |
			      (uint64_t)r->seg_hdr[2] << 8 | r->seg_hdr[3];
		if (r->seg_left == 0)
			r->batch = 3;
		return 1;
	}
	take = n < r->seg_left ? n : (size_t)r->seg_left;
	buf_append(line_out, s, take);
	r->seg_left -= take;
	return take;
}

int direct_relay_client(struct direct_relay *r, struct buf *pending, const char *p, size_t n,
			struct buf *line_out)
{
	size_t off = 0;
	int quit = 0;

	buf_append(pending, p, n);
	while (off < pending->len) {
		const char *s = pending->data + off, *nl;
		size_t len;
		if (r->batch == 2) {
			off += direct_relay_segments(r, s, pending->len - off, line_out);
			continue;
		}
		if (r->bdat_left) {
			len = pending->len - off < r->bdat_left ? pending->len - off
								: (size_t)r->bdat_left;
			buf_append(line_out, s, len);
			r->bdat_left -= len;
			off += len;
			continue;
		}
		if ((nl = memchr(s, '\n', pending->len - off)) == NULL)
			break;
		len = (size_t)(nl - s) + 1;
		off += len;
		if (r->data) {
			buf_append(line_out, s, len);
			if ((len == 3 && memcmp(s, ".\r\n", 3) == 0) || (len == 2 && s[0] == '.')) {
				r->data = 0;
				r->sent++;
			}
			continue;
		}
		if (len >= 4 && strncasecmp(s, "QUIT", 4) == 0 && len <= 6) {
			r->quit = quit = 1;
			continue;
		}
		r->sent++;
		if (len >= 4 && strncasecmp(s, "DATA", 4) == 0 && len <= 6)
			r->data_cmd = r->sent;
		else if (len > 5 && strncasecmp(s, "BDAT ", 5) == 0)
			r->bdat_left = strtoull(s + 5, NULL, 10);
		else if (len > 9 && strncasecmp(s, "XDMBATCH ", 9) == 0) {
			r->batch = 1;
			r->batch_cmd = r->sent;
		}
		buf_append(line_out, s, len);
	}
	if (off) {
		memmove(pending->data, pending->data + off, pending->len - off);
		pending->len -= off;
	}
	return quit;
}

/* --- the end --------------------------------------------------------------------- */

static void direct_raw_in_cb(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg);
static void direct_line_write_cb(struct bufferevent *bev, void *arg);
static void direct_raw_out_cb(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg);

static void direct_release(struct direct *x)
{
	if (x->adopted)
		smtp_server_adopt_forget(x->ctx.smtp, x->adopted);
	batch_duplex_abandon(x->dx);
	if (x->c)
		smtpc_free(x->c);
	if (x->raw) {
		evbuffer_remove_cb(bufferevent_get_input(x->raw), direct_raw_in_cb, x);
		evbuffer_remove_cb(bufferevent_get_output(x->raw), direct_raw_out_cb, x);
	}
	if (x->line)
		bufferevent_free(x->line); /* the TLS filter frees the tty's too */
	if (x->peer)
		bufferevent_free(x->peer);
	retrieve_client_free(x->rc);
	if (x->ev_end)
		event_free(x->ev_end);
	carrier_watch_free(&x->cw);
	held_batch_free(&x->b);
	free(x->label);
	free(x->line_peer);
	buf_free(&x->lbuf);
	free(x->end_text);
	free(x);
}

void direct_free(struct direct *x)
{
	if (x)
		direct_release(x);
}

void direct_stats(const struct direct *x, unsigned *msgs_out, unsigned long long *bytes_out)
{
	*msgs_out = x ? x->msgs_ok : 0;
	*bytes_out = x ? x->bytes_out : 0;
}

static void direct_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct direct *x = arg;
	void (*done)(int, const char *, void *) = x->ctx.done;
	void *darg = x->ctx.arg;
	int ok = x->end_ok;
	char *text = x->end_text;

	x->end_text = NULL;
	/* done first: the session reads our counters (direct_stats) in it and
	 * forgets us; only then is x freed. */
	done(ok, text, darg);
	direct_release(x);
	free(text);
}

/* Bytes we wrote that have not left for the tty yet. */
static size_t direct_unsent(const struct direct *x)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(x->line));

	return n + (x->raw != x->line ? evbuffer_get_length(bufferevent_get_output(x->raw)) : 0);
}

/* At the end: the last command (QUIT) left, or the line is gone. */
static void direct_drain_check(struct direct *x)
{
	struct timeval now = {0, 0};

	if (x->line == NULL || direct_unsent(x) == 0)
		evtimer_add(x->ev_end, &now);
}

static void direct_drained_cb(struct bufferevent *bev, void *arg)
{
	direct_drain_check(arg);
}

static void direct_drain_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct direct *x = arg;
	struct timeval now = {0, 0};

	evtimer_add(x->ev_end, &now);
}

static void direct_raw_out_cb(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	struct direct *x = arg;

	if (x->state == DS_END && info->n_deleted)
		direct_drain_check(x);
}

/* Ends the job from a timer, so done never runs inside a caller of ours;
 * a queued QUIT gets up to DIRECT_DRAIN_MS to leave first (plain or TLS). */
static void direct_end(struct direct *x, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void direct_end(struct direct *x, int ok, const char *fmt, ...)
{
	struct timeval tv = {0, 0};
	struct buf t = BUF_INIT;
	va_list ap;

	if (x->state == DS_END)
		return;
	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	x->state = DS_END;
	x->end_ok = ok;
	x->end_text = buf_steal(&t);
	direct_step(x, ok ? "done" : "failed", 0, x->end_text);
	if (x->peer)
		bufferevent_disable(x->peer, EV_READ | EV_WRITE);
	x->ev_end = evtimer_new(x->ctx.base, direct_end_cb, x);
	if (x->line && direct_unsent(x) > 0) {
		bufferevent_disable(x->line, EV_READ);
		bufferevent_setwatermark(x->line, EV_WRITE, 0, 0);
		bufferevent_setcb(x->line, NULL, direct_drained_cb, direct_drain_event_cb, x);
		evbuffer_add_cb(bufferevent_get_output(x->raw), direct_raw_out_cb, x);
		tv.tv_sec = DIRECT_DRAIN_MS / 1000;
		tv.tv_usec = (DIRECT_DRAIN_MS % 1000) * 1000;
	} else if (x->line)
		bufferevent_disable(x->line, EV_READ | EV_WRITE);
	evtimer_add(x->ev_end, &tv);
}

/* --- outbound results ------------------------------------------------------------ */

/* Stores one message's results; counts what the hub accepted in full. */
static void direct_store(struct direct *x, struct held_msg *m, const struct smtpc_msg *sm)
{
	if (sm->status == Q_OK) {
		x->msgs_ok++;
		x->bytes_out += m->content.len;
	}
	held_store(&x->peer_info, x->ctx.q, x->ctx.d, m, sm);
}

/* 1 if rcpt r goes out over this line: pending, remote, routed via the entry. */
static int direct_rcpt_ours(const struct q_rcpt *r, void *arg)
{
	const struct direct *x = arg;
	const char *at = strrchr(r->addr, '@');
	const struct route *rt;

	if (r->state != RCPT_PENDING || at == NULL || config_is_local_domain(x->ctx.cfg, at + 1))
		return 0;
	rt = routes_lookup(x->ctx.cfg->routes, at + 1);
	return rt && rt->type == ROUTE_SMARTHOST && rt->via && strcmp(rt->via, x->ctx.entry) == 0;
}

static int direct_scan_one(const char *id, void *arg)
{
	struct direct *x = arg;

	held_batch_load(&x->b, x->ctx.q, id, 1, direct_rcpt_ours, x);
	return 0;
}

/* The mail for the line, oldest first: the entry's messages as the queue's
 * index lists them (no other message is read), or the whole queue from
 * disk while start-up recovery has not filled the index yet. */
static void direct_collect(struct direct *x)
{
	struct q_recover_progress p;
	struct strlist ids = {0};

	if (queue_recover_progress(x->ctx.q, &p)) {
		queue_scan(x->ctx.q, direct_scan_one, x);
		return;
	}
	qindex_link_ids(queue_index(x->ctx.q), x->ctx.entry, &ids);
	for (size_t i = 0; i < ids.n; i++)
		direct_scan_one(ids.v[i], x);
	strlist_free(&ids);
}

/* --- what the last call taught about the hub ------------------------------------ */

/* DIR/peers/line-ENTRY exists: the hub is dialmail, offers CRAM-MD5 and no
 * STARTTLS we want, so the next call sends EHLO and AUTH at once. */
static void direct_peer_set(const struct direct *x, int yes)
{
	char *name = xasprintf("line-%s", x->ctx.entry);

	outbound_peer_set(x->ctx.q, name, yes);
	free(name);
}

static int direct_peer_known(const struct direct *x)
{
	char *name = xasprintf("line-%s", x->ctx.entry);
	int yes = outbound_peer_has(x->ctx.q, name);

	free(name);
	return yes;
}

/* After the hub's EHLO reply (and, unless pipelined, its 235). */
static void direct_peer_learn(struct direct *x)
{
	const struct odmr_client_caps *caps = retrieve_client_caps(x->rc);

	direct_peer_set(x, retrieve_client_dialmail(x->rc) && caps->cram &&
			       !retrieve_client_tls(x->rc) &&
			       (!caps->starttls || x->ctx.sc->atrn_tls == ODMR_TLS_NONE));
}

/* --- the line -------------------------------------------------------------------- */

static int direct_want_atrn(const struct direct *x)
{
	return strcasecmp(x->ctx.sc->retrieve, "atrn") == 0 && x->ctx.sc->atrn_domains.n;
}

/* After the outbound mail: ATRN, or QUIT when the entry retrieves nothing. */
static void direct_atrn(struct direct *x)
{
	x->state = DS_DIALOGUE;
	if (direct_want_atrn(x))
		return atrn_command(x->rc, x->ctx.sc);
	retrieve_client_quit(x->rc, 1, "%u messages sent; hub answered QUIT", x->msgs_ok);
}

static void direct_outbound(struct direct *x);
static void direct_reverse(struct direct *x);
static void direct_line_read_cb(struct bufferevent *bev, void *arg);
static void direct_line_event_cb(struct bufferevent *bev, short what, void *arg);

/* 220 to STARTTLS: TLS as a filter over the tty's bufferevent, so the
 * carrier watch still sees the raw bytes. */
static struct bufferevent *direct_tls_wrap(SSL *ssl, void *arg)
{
	struct direct *x = arg;
	struct timeval tv = {x->timeout_s, 0};
	struct bufferevent *tb = bufferevent_openssl_filter_new(
	    x->ctx.base, x->line, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);

	if (tb == NULL) { /* libevent freed ssl and the tty's bufferevent */
		x->line = x->raw = NULL;
		return NULL;
	}
	x->line = tb;
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bufferevent_setcb(tb, direct_line_read_cb, direct_line_write_cb, direct_line_event_cb, x);
	bufferevent_setwatermark(tb, EV_WRITE, DIRECT_LINE_LOW, 0);
	bufferevent_set_timeouts(tb, &tv, &tv);
	return tb;
}

static int direct_duplex(struct direct *x, int auth_pending);

/* The dialogue is at our turn (after AUTH): both directions at once if
 * the hub can, else the outbound mail first. */
static void direct_ready(struct retrieve_client *c, void *arg)
{
	direct_peer_learn(arg);
	if (!direct_duplex(arg, 0))
		direct_outbound(arg);
}

/* Early dialogue: XDMBATCH DUPLEX right behind the CRAM-MD5 answer. */
static int direct_pipelined(struct retrieve_client *c, void *arg)
{
	direct_peer_learn(arg);
	return direct_duplex(arg, 1);
}

static void direct_atrn_reply(struct retrieve_client *c, int code, const char *text, void *arg)
{
	struct direct *x = arg;
	int r = atrn_answer(c, code, text);

	if (r > 0)
		return direct_reverse(x);
	if (r == 0)
		return retrieve_client_end(c, 1, "%u messages sent, no mail waiting (%d %s)",
					   x->msgs_ok, code, text);
	retrieve_client_end(c, 0, "ATRN refused: %d %s", code, text);
}

static void direct_client_end(int ok, const char *text, void *arg)
{
	struct direct *x = arg;

	if (!ok && !retrieve_client_greeted(x->rc))
		direct_peer_set(x, 0);
	direct_end(x, ok, "%s", text);
}

static const struct retrieve_client_ops direct_client_ops = {
    .ready = direct_ready,
    .pipelined = direct_pipelined,
    .reply = direct_atrn_reply,
    .step = direct_step_cb,
    .tls_wrap = direct_tls_wrap,
    .end = direct_client_end,
};

/* Every byte that comes from the tty passes here first, TLS or not. */
static void direct_raw_in_cb(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct direct *x = arg;

	if (info->n_added == 0 || x->state == DS_END)
		return;
	carrier_watch_feed(&x->cw, in);
	/* after the hub's QUIT, bytes without NO CARRIER do not end the wait */
	if (x->closing && !evtimer_pending(x->cw.ev_quiet, NULL))
		carrier_watch_arm(&x->cw, DIRECT_HANGUP_WAIT_S * 1000);
}

static void direct_quiet_cb(evutil_socket_t fd, short what, void *arg)
{
	struct direct *x = arg;

	if (x->closing)
		return direct_end(x, 1, "%u messages sent; held mail received, hub sent QUIT",
				  x->msgs_ok);
	direct_end(x, 0, "the line dropped (NO CARRIER) after %u messages out", x->msgs_ok);
}

static void direct_line_read_cb(struct bufferevent *bev, void *arg)
{
	struct direct *x = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (x->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (x->state == DS_SEND || x->state == DS_RECV) {
		struct evbuffer *out = bufferevent_get_output(x->peer);
		if (x->state == DS_SEND) {
			/* note each reply line for the relay, then pass the bytes on */
			struct evbuffer_ptr p;
			size_t len;
			char *line;
			while ((p = evbuffer_search_eol(in, NULL, &len, EVBUFFER_EOL_CRLF)).pos >=
			       0) {
				size_t ll = (size_t)p.pos + len;
				line = xmalloc(ll + 1);
				evbuffer_remove(in, line, ll);
				direct_relay_reply(&x->rel, line, (size_t)p.pos);
				evbuffer_add(out, line, ll);
				free(line);
			}
			if (x->rel.quit && x->rel.answered >= x->rel.sent) {
				x->rel.quit = 0;
				evbuffer_add_printf(out, "221 2.0.0 line kept for ATRN\r\n");
			}
			return;
		}
		evbuffer_add_buffer(out, in);
		return;
	}
	if (x->state == DS_DIALOGUE)
		retrieve_client_read(x->rc, in);
}

static void direct_line_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct direct *x = arg;

	if (retrieve_client_tls_event(x->rc, bev, what))
		return; /* the handshake: the dialogue's */
	if (x->closing)
		return direct_quiet_cb(-1, 0, x);
	direct_end(x, 0, "the line %s after %u messages out",
		   what & BEV_EVENT_TIMEOUT ? "timed out" : "closed (carrier lost)", x->msgs_ok);
}

/* --- the engine's turn: outbound mail ------------------------------------------- */

static void direct_peer_read_cb(struct bufferevent *bev, void *arg)
{
	struct direct *x = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	struct buf out = BUF_INIT;
	char *p;

	if (x->state != DS_SEND) {
		evbuffer_add_buffer(bufferevent_get_output(x->line), in);
		return;
	}
	p = xmalloc(n + 1);
	evbuffer_remove(in, p, n);
	direct_relay_client(&x->rel, &x->lbuf, p, n, &out);
	free(p);
	if (out.len)
		bufferevent_write(x->line, out.data, out.len);
	if (x->rel.quit && x->rel.answered >= x->rel.sent) {
		x->rel.quit = 0;
		bufferevent_write(bev, "221 2.0.0 line kept for ATRN\r\n", 30);
	}
	buf_free(&out);
	/* the modem is slow: the engine is read only while little waits for
	 * the tty, so its reply timers see the line's real pace */
	if (direct_unsent(x) > DIRECT_LINE_HIGH)
		bufferevent_disable(bev, EV_READ);
}

/* The line took its output down to DIRECT_LINE_LOW: read the engine again. */
static void direct_line_write_cb(struct bufferevent *bev, void *arg)
{
	struct direct *x = arg;

	if (x->peer && direct_unsent(x) <= DIRECT_LINE_HIGH)
		bufferevent_enable(x->peer, EV_READ);
}

/* Waits for the hub to hang up (NO CARRIER, or the line closing) so the
 * last replies, still crossing the line at its speed, are not cut by our
 * own hang-up; at most DIRECT_HANGUP_WAIT_S. */
static void direct_recv_over(struct direct *x)
{
	if (x->quit) {
		x->closing = 1;
		bufferevent_setcb(x->line, direct_line_read_cb, NULL, direct_line_event_cb, x);
		/* NO CARRIER may be in already (the hub hung up first): its wait stands */
		if (!evtimer_pending(x->cw.ev_quiet, NULL))
			carrier_watch_arm(&x->cw, DIRECT_HANGUP_WAIT_S * 1000);
	} else
		direct_end(x, 0, "the line ended before the hub's QUIT (%u messages sent)",
			   x->msgs_ok);
}

static void direct_line_drained_cb(struct bufferevent *bev, void *arg)
{
	struct direct *x = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		direct_recv_over(x);
}

/* The server's end of the relay closed: its last replies (the 250 for the
 * last message, the 221) must reach the hub before the job ends. */
static void direct_peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct direct *x = arg;

	if (x->state != DS_RECV || !(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (evbuffer_get_length(bufferevent_get_input(bev)))
		evbuffer_add_buffer(bufferevent_get_output(x->line), bufferevent_get_input(bev));
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(x->line, direct_line_read_cb, direct_line_drained_cb,
			  direct_line_event_cb, x);
	direct_line_drained_cb(x->line, x);
}

static void direct_on_msg(struct smtpc *c, struct smtpc_msg *sm, void *arg)
{
	struct held_msg *m = sm->user;

	if (!m->stored)
		direct_store(arg, m, sm);
}

/* The engine's results stored (what has none stays queued), event 4113. */
static void direct_outbound_over(struct direct *x, const struct smtpc_session_result *r,
				 const char *how)
{
	const char *kv[] = {"entry", x->ctx.entry, NULL};

	for (size_t i = 0; i < x->b.nm; i++)
		if (!x->b.m[i].stored && x->b.jobs[i].attempted)
			direct_store(x, &x->b.m[i], &x->b.jobs[i]);
	event_logkv(EV_SESSION_OUTBOUND_DONE, kv,
		    "Outbound delivery over the line of %s done%s: %u messages sent, %u "
		    "recipients deferred, %u failed (%s%s%s)",
		    x->ctx.entry, how, x->msgs_ok, x->peer_info.held, x->peer_info.failed,
		    smtpc_cause_name(r->cause), *r->text ? ": " : "", r->text);
}

static void direct_engine_done(struct smtpc *c, const struct smtpc_session_result *r, void *arg)
{
	struct direct *x = arg;

	direct_outbound_over(x, r, "");
	/* r belongs to the client: keep what we need before freeing it. */
	int failed = r->cause != SMTPC_OK;
	char *why = xstrdup(r->text);

	x->c = NULL;
	smtpc_free(c);
	if (x->peer) {
		bufferevent_free(x->peer);
		x->peer = NULL;
	}
	if (x->state != DS_END && failed)
		direct_end(x, 0, "outbound over the line ended: %s", why);
	free(why);
	if (x->state == DS_END)
		return;
	direct_atrn(x);
	retrieve_client_read(x->rc, bufferevent_get_input(x->line));
}

static int direct_pair(struct direct *x, evutil_socket_t *mine)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -1;
	for (int i = 0, n = DIRECT_LINE_LOW; i < 2; i++) { /* the pace shows through */
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
	}
	x->peer = bufferevent_socket_new(x->ctx.base, sv[1], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(x->peer, direct_peer_read_cb, NULL, direct_peer_event_cb, x);
	bufferevent_enable(x->peer, EV_READ | EV_WRITE);
	*mine = sv[0];
	return 0;
}

static void direct_outbound(struct direct *x)
{
	struct smtpc_options opt;
	evutil_socket_t fd;

	direct_collect(x);
	if (x->b.nm == 0) {
		direct_step(x, "no outbound mail for the line", 0, NULL);
		return direct_atrn(x);
	}
	if (direct_pair(x, &fd) < 0)
		return direct_end(x, 0, "socketpair: %s", strerror(errno));
	held_batch_jobs(&x->b);
	memset(&opt, 0, sizeof(opt));
	opt.helo_name = x->ctx.cfg->hostname;
	opt.tls = SMTPC_TLS_NONE; /* the relay reads the dialogue; AUTH was done above */
	outbound_timeouts(x->ctx.cfg, &opt.t);
	opt.batch = x->ctx.cfg->batch_transfer;
	opt.batch_chunk = (size_t)x->ctx.cfg->batch_checkpoint_size;
	x->c = smtpc_new(x->ctx.base, &opt, x->b.jobs, x->b.nm, direct_engine_done, x);
	smtpc_set_msg_cb(x->c, direct_on_msg);
	x->state = DS_SEND;
	memset(&x->rel, 0, sizeof(x->rel));
	direct_step(x, "sending outbound mail", 0, NULL);
	/* The engine expects a greeting: the hub's was read above. */
	bufferevent_write(x->peer, "220 line ready\r\n", 16);
	if (smtpc_start_fd(x->c, fd) < 0)
		direct_end(x, 0, "cannot start the SMTP client on the line");
}

/* --- both at once: XDMBATCH DUPLEX ------------------------------------------------ */

/* The hub has the results of our batch, we have its held mail: the hub
 * ends the session (221) and hangs up, as after ATRN; no QUIT needed. */
static void direct_duplex_done(struct smtpc *c, const struct smtpc_session_result *r, void *arg)
{
	struct direct *x = arg;
	int failed = r->cause != SMTPC_OK;
	char *why = xstrdup(r->text);

	direct_outbound_over(x, r, " (XDMBATCH DUPLEX)");
	x->c = NULL;
	smtpc_free(c);
	if (failed) {
		direct_end(x, 0, "XDMBATCH DUPLEX over the line ended: %s", why);
	} else if (x->state != DS_END) { /* the hub says 221 and hangs up */
		x->quit = 1;
		direct_recv_over(x);
	}
	free(why);
}

static void direct_duplex_end(enum batch_duplex_end how, const char *text, void *arg)
{
	struct direct *x = arg;

	x->dx = NULL;
	bufferevent_setcb(x->line, direct_line_read_cb, direct_line_write_cb, direct_line_event_cb,
			  x);
	if (how == BD_LOST && strncmp(text, "AUTH", 4) == 0)
		direct_peer_set(x, 0); /* the next call waits for each reply again */
	if (how != BD_FALLBACK)
		return smtpc_external_end(x->c, how == BD_DONE, text);
	direct_step(x, "XDMBATCH DUPLEX refused, one direction after the other", 0, text);
	smtpc_free(x->c);
	x->c = NULL;
	held_batch_free(&x->b);
	x->state = DS_DIALOGUE;
	direct_outbound(x);
}

/* XDMBATCH DUPLEX: the hub offers it and ATRN is wanted. 1 if started;
 * auth_pending: the command goes behind the AUTH answer (early dialogue). */
static int direct_duplex(struct direct *x, int auth_pending)
{
	const struct odmr_client_caps *caps = retrieve_client_caps(x->rc);
	struct batch_duplex_params p = {0};
	struct smtpc_options opt = {0};
	struct buf doms = BUF_INIT;

	if (!caps->duplex || !x->ctx.cfg->batch_transfer || !direct_want_atrn(x))
		return 0;
	direct_collect(x);
	held_batch_jobs(&x->b);
	opt.helo_name = x->ctx.cfg->hostname;
	x->c = smtpc_new(x->ctx.base, &opt, x->b.jobs, x->b.nm, direct_duplex_done, x);
	smtpc_set_msg_cb(x->c, direct_on_msg);
	smtp_server_batch_peer(x->ctx.smtp, &p.rx);
	p.rx.addr = p.rx.helo = p.rx.peer_key = x->line_peer;
	p.tx = x->c;
	p.dict = caps->dict == BF_DICT_VERSION ? caps->dict : 0;
	p.chunk = (size_t)x->ctx.cfg->batch_checkpoint_size;
	p.timeout_ms = x->timeout_s * 1000;
	for (size_t i = 0; i < x->ctx.sc->atrn_domains.n; i++)
		buf_printf(&doms, "%s%s", i ? "," : "", x->ctx.sc->atrn_domains.v[i]);
	p.domains = buf_cstr(&doms);
	p.auth_pending = auth_pending;
	p.end = direct_duplex_end;
	p.arg = x;
	retrieve_client_detach(x->rc);
	x->state = DS_DUPLEX;
	direct_step(x, "XDMBATCH DUPLEX: outbound and held mail at once", 0, NULL);
	x->dx = batch_duplex_client(x->line, &p);
	buf_free(&doms);
	if (x->dx)
		return 1;
	smtpc_free(x->c);
	x->c = NULL;
	held_batch_free(&x->b);
	x->state = DS_DIALOGUE;
	return 0;
}

/* --- the server's turn: held mail after ATRN ----------------------------------- */

static void direct_on_close(int quit, void *arg)
{
	struct direct *x = arg;

	x->adopted = NULL;
	x->quit = quit; /* the end comes when the relay is flushed */
}

static void direct_reverse(struct direct *x)
{
	evutil_socket_t fd;
	struct bufferevent *bev;
	char *peer;

	retrieve_client_detach(x->rc);
	if (direct_pair(x, &fd) < 0)
		return direct_end(x, 0, "socketpair: %s", strerror(errno));
	x->state = DS_RECV;
	bev = bufferevent_socket_new(x->ctx.base, fd, BEV_OPT_CLOSE_ON_FREE);
	peer = xasprintf("line:%s", x->ctx.entry);
	x->adopted = smtp_server_adopt(x->ctx.smtp, bev, peer, retrieve_client_adopt_flags(x->rc),
				       direct_on_close, x);
	free(peer);
	if (evbuffer_get_length(bufferevent_get_input(x->line)))
		direct_line_read_cb(x->line, x);
}

/* The dialogue's options: the name the hub's certificate must carry is
 * atrn_host's (the line has no host; without it, the chain only). */
static void direct_client_opts(const struct direct_ctx *ctx, struct retrieve_client_opts *o,
			       char **tls_name)
{
	int port = 0;

	*tls_name = ctx->sc->atrn_host ? odmr_client_host(ctx->sc->atrn_host, &port) : NULL;
	*o = (struct retrieve_client_opts){
	    .mode = RC_LINE,
	    .cfg = ctx->cfg,
	    .sc = ctx->sc,
	    .host = *tls_name,
	    .cred = ctx->sc->atrn_auth ? routes_auth(ctx->cfg->routes, ctx->sc->atrn_auth) : NULL,
	    .malformed = "malformed reply on the line (modem noise?)"};
}

/* The tty, dup'ed: reads and writes with the line's timeouts; the raw bytes
 * pass direct_raw_in_cb (NO CARRIER). */
static int direct_line_open(struct direct *x, struct buf *why)
{
	struct timeval tv = {x->timeout_s, 0};
	int fd;

	if (x->ctx.fd < 0 || (fd = dup(x->ctx.fd)) < 0) {
		buf_printf(why, "no tty for the line: %s", strerror(errno));
		return -1;
	}
	evutil_make_socket_closeonexec(fd);
	evutil_make_socket_nonblocking(fd);
	x->line = x->raw = bufferevent_socket_new(x->ctx.base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(x->line, direct_line_read_cb, direct_line_write_cb, direct_line_event_cb,
			  x);
	/* the line's pace reaches the engine: see direct_peer_read_cb; under
	 * TLS the high mark keeps the filter from piling bytes onto the tty */
	bufferevent_setwatermark(x->raw, EV_WRITE, DIRECT_LINE_LOW, DIRECT_LINE_HIGH);
	bufferevent_set_timeouts(x->line, &tv, &tv);
	bufferevent_enable(x->line, EV_READ | EV_WRITE);
	carrier_watch_init(&x->cw, x->ctx.base, direct_quiet_cb, x);
	carrier_watch_output(&x->cw, bufferevent_get_output(x->raw));
	evbuffer_add_cb(bufferevent_get_input(x->raw), direct_raw_in_cb, x);
	return 0;
}

struct direct *direct_start(const struct direct_ctx *ctx, struct buf *why)
{
	struct direct *x = xcalloc(1, sizeof(*x));
	struct retrieve_client_opts o;
	char *tls_name;

	x->ctx = *ctx;
	x->timeout_s = ctx->sc->retrieve_timeout > 300 ? ctx->sc->retrieve_timeout : 300;
	direct_client_opts(ctx, &o, &tls_name);
	o.early = direct_peer_known(x) && ctx->sc->atrn_tls != ODMR_TLS_REQUIRED;
	x->label = xasprintf("SMTP over the line of %s", ctx->entry);
	x->line_peer = xasprintf("line:%s", ctx->entry);
	x->peer_info = (struct held_peer){.key = "entry",
					  .value = ctx->entry,
					  .label = x->label,
					  .remote_mta = ctx->entry,
					  .tag = "direct",
					  .log_deferred = 1};
	if (direct_want_atrn(x) && (o.cred == NULL || ctx->smtp == NULL)) {
		buf_puts(why, o.cred == NULL ? "atrn_auth names no credentials of auth_file"
					     : "no SMTP server to receive the held mail");
		goto fail;
	}
	if (direct_line_open(x, why) < 0)
		goto fail;
	x->rc = retrieve_client_attach(ctx->base, x->line, &o, &direct_client_ops, x);
	free(tls_name);
	x->state = DS_DIALOGUE;
	direct_step(x, "waiting for the hub's greeting", 0, NULL);
	return x;
fail:
	free(tls_name);
	direct_release(x);
	return NULL;
}
