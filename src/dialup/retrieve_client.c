/* The retrieval client, written once for ETRN, TURN and ATRN, over TCP and
 * on the modem line. Invariant: with STARTTLS nothing is sent before the
 * certificate passed; on its own connection the end comes once, from a timer. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "deliver/mx.h"
#include "dialup/odmr_client.h"
#include "dialup/retrieve_client.h"
#include "lib/xmalloc.h"
#include "smtp/smtp_server.h"

#define RC_DRAIN_MS	  2000 /* at the end: how long a queued QUIT may take to leave */
#define RC_SMTP_REPLY_MAX 4096
#define RC_LINE_REPLY_MAX 8192

/* Where the dialogue is; the reading states expect a reply. */
enum rc_state {
	RC_GREET,
	RC_EHLO,
	RC_HELO,
	RC_STARTTLS,
	RC_AUTH,
	RC_CMD,
	RC_QUIT,
	RC_TLS,	  /* the handshake */
	RC_READY, /* the method's turn, nothing sent yet */
	RC_OFF	  /* ended, reversed or detached */
};

struct rc_conn;

struct retrieve_client {
	struct event_base *base;
	struct retrieve_client_opts o; /* o.host and o.malformed are copies */
	const struct retrieve_client_ops *ops;
	void *arg;
	struct bufferevent *bev;
	int own; /* bev is ours (a connection of its own) */
	enum rc_state state;
	int tls, cram; /* STARTTLS done; AUTH CRAM-MD5 asked */
	int early;     /* EHLO and AUTH went before the greeting (o.early) */
	int dialmail;  /* the greeting was dialmail's */
	struct odmr_client_caps caps;
	struct buf reply;
	int quit_ok; /* the end after QUIT's reply */
	char *quit_text;
	struct rc_conn *conn; /* resolving and connecting */
	struct smtp_server *smtp;
	struct smtp_adopted *adopted;
	int ended;
	struct event *ev_end;
	int end_ok;
	char *end_text;
};

/* --- connecting: c-ares, then each address in turn --------------------------- */

typedef void (*rc_conn_cb)(struct bufferevent *bev, const char *why, void *arg);

struct rc_conn {
	struct event_base *base;
	struct mx *mx;
	struct mx_query *q;
	char *host;
	int port, timeout_s;
	struct strlist addrs; /* "ip:port" in the order to try */
	size_t next;
	struct bufferevent *bev; /* the attempt in progress */
	struct buf tried;	 /* "addr: cause" of the failed attempts */
	rc_conn_cb cb;
	void *arg;
};

static void rc_conn_cancel(struct rc_conn *c)
{
	if (c == NULL)
		return;
	if (c->bev)
		bufferevent_free(c->bev);
	mx_free(c->mx); /* its callbacks are not called */
	strlist_free(&c->addrs);
	buf_free(&c->tried);
	free(c->host);
	free(c);
}

/* The end: c is freed before cb runs, so cb may do anything. */
static void rc_conn_finish(struct rc_conn *c, struct bufferevent *bev, const char *why)
{
	rc_conn_cb cb = c->cb;
	void *arg = c->arg;
	char *text = why ? xstrdup(why) : NULL;

	c->bev = NULL;
	rc_conn_cancel(c);
	cb(bev, text, arg);
	free(text);
}

static void rc_conn_try(struct rc_conn *c);

static void rc_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct rc_conn *c = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		bufferevent_set_timeouts(bev, NULL, NULL);
		rc_conn_finish(c, bev, NULL);
		return;
	}
	buf_printf(&c->tried, "%s%s: %s", c->tried.len ? "; " : "", c->addrs.v[c->next - 1],
		   what & BEV_EVENT_TIMEOUT ? "timed out" : evutil_socket_error_to_string(err));
	bufferevent_free(bev);
	c->bev = NULL;
	rc_conn_try(c);
}

/* Connects to the next address; after the last one, fails with them all. */
static void rc_conn_try(struct rc_conn *c)
{
	struct timeval tv = {c->timeout_s, 0};
	struct sockaddr_storage ss;
	int len;
	char *why;

	while (c->next < c->addrs.n) {
		const char *a = c->addrs.v[c->next++];
		len = (int)sizeof(ss);
		if (evutil_parse_sockaddr_port(a, (struct sockaddr *)&ss, &len) < 0)
			continue;
		c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
		bufferevent_setcb(c->bev, NULL, NULL, rc_conn_event, c);
		bufferevent_set_timeouts(c->bev, &tv, &tv);
		bufferevent_enable(c->bev, EV_WRITE);
		if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, len) == 0)
			return;
		buf_printf(&c->tried, "%s%s: %s", c->tried.len ? "; " : "", a, strerror(errno));
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	why = xasprintf("no connection to %s port %d (%s)", c->host, c->port,
			c->tried.len ? buf_cstr(&c->tried) : "no address");
	rc_conn_finish(c, NULL, why);
	free(why);
}

static void rc_conn_dns(const struct mx_result *r, void *arg)
{
	struct rc_conn *c = arg;
	char *why;

	c->q = NULL;
	if (r->status != Q_OK || r->n == 0) {
		why = xasprintf("cannot resolve %s: %s", c->host, r->error);
		rc_conn_finish(c, NULL, why);
		free(why);
		return;
	}
	for (size_t i = 0; i < r->n; i++)
		strlist_add(&c->addrs, r->v[i].addr);
	rc_conn_try(c);
}

/* host by the daemon's resolver (an address needs no DNS), each address
 * within timeout_s; cb once, from the loop, with the bev (no callbacks set,
 * reading off) or with why. NULL with why filled if no resolver can be made. */
static struct rc_conn *rc_conn_start(struct event_base *base, const struct config *cfg,
				     const char *host, int port, int timeout_s, rc_conn_cb cb,
				     void *arg, struct buf *why)
{
	struct rc_conn *c = xcalloc(1, sizeof(*c));

	if ((c->mx = mx_new(base, &cfg->dns_servers, why)) == NULL) {
		free(c);
		return NULL;
	}
	c->base = base;
	c->host = xstrdup(host);
	c->port = port;
	c->timeout_s = timeout_s > 0 ? timeout_s : 60;
	c->cb = cb;
	c->arg = arg;
	c->q = mx_host(c->mx, host, port, rc_conn_dns, c);
	return c;
}

/* --- the end ------------------------------------------------------------------ */

void retrieve_client_free(struct retrieve_client *c)
{
	if (c == NULL)
		return;
	if (c->adopted)
		smtp_server_adopt_forget(c->smtp, c->adopted);
	rc_conn_cancel(c->conn);
	if (c->own && c->bev)
		bufferevent_free(c->bev);
	if (c->ev_end)
		event_free(c->ev_end);
	buf_free(&c->reply);
	free(c->quit_text);
	free(c->end_text);
	free((char *)c->o.host);
	free((char *)c->o.malformed);
	free(c);
}

static void rc_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct retrieve_client *c = arg;
	void (*end)(int, const char *, void *) = c->ops->end;
	void *earg = c->arg;
	int ok = c->end_ok;
	char *text = c->end_text;

	c->end_text = NULL;
	retrieve_client_free(c);
	end(ok, text, earg);
	free(text);
}

/* The last command (QUIT) left, or the connection is gone: end now. */
static void rc_drained_cb(struct bufferevent *bev, void *arg)
{
	struct retrieve_client *c = arg;
	struct timeval now = {0, 0};

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		evtimer_add(c->ev_end, &now);
}

static void rc_drain_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct retrieve_client *c = arg;
	struct timeval now = {0, 0};

	evtimer_add(c->ev_end, &now);
}

/* Its own connection ends from a timer, so end never runs inside a caller
 * of ours; bufferevent_free drops unsent output, so a queued QUIT (plain or
 * TLS) gets up to RC_DRAIN_MS to leave first. */
static void rc_end_own(struct retrieve_client *c)
{
	struct timeval tv = {0, 0};

	c->ev_end = evtimer_new(c->base, rc_end_cb, c);
	if (c->bev && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		bufferevent_setcb(c->bev, NULL, rc_drained_cb, rc_drain_event_cb, c);
		tv.tv_sec = RC_DRAIN_MS / 1000;
		tv.tv_usec = (RC_DRAIN_MS % 1000) * 1000;
	} else if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	evtimer_add(c->ev_end, &tv);
}

static void rc_vend(struct retrieve_client *c, int ok, const char *fmt, va_list ap)
{
	struct buf t = BUF_INIT;

	if (c->ended)
		return;
	buf_vprintf(&t, fmt, ap);
	c->ended = 1;
	c->state = RC_OFF;
	c->end_ok = ok;
	c->end_text = buf_steal(&t);
	if (c->own)
		return rc_end_own(c);
	c->ops->end(ok, c->end_text, c->arg); /* the line's owner ends */
}

void retrieve_client_end(struct retrieve_client *c, int ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rc_vend(c, ok, fmt, ap);
	va_end(ap);
}

/* --- sending ------------------------------------------------------------------- */

static void rc_send(struct retrieve_client *c, enum rc_state next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rc_send(struct retrieve_client *c, enum rc_state next, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	odmr_client_vsend(c->bev, fmt, ap);
	va_end(ap);
	c->state = next;
}

void retrieve_client_command(struct retrieve_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	odmr_client_vsend(c->bev, fmt, ap);
	va_end(ap);
	c->state = RC_CMD;
}

void retrieve_client_quit(struct retrieve_client *c, int ok, const char *fmt, ...)
{
	struct buf t = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	free(c->quit_text);
	c->quit_text = buf_steal(&t);
	c->quit_ok = ok;
	rc_send(c, RC_QUIT, "QUIT");
}

void retrieve_client_send_quit(struct retrieve_client *c)
{
	rc_send(c, RC_OFF, "QUIT");
}

void retrieve_client_step(struct retrieve_client *c, const char *what, int code, const char *text)
{
	if (c->ops->step)
		c->ops->step(c->arg, what, code, text);
}

/* --- STARTTLS and AUTH (the ATRN dialogue) ------------------------------------ */

/* A failure of the TLS step: nothing (no AUTH) has been sent. */
static void rc_tls_fail(struct retrieve_client *c, const char *what, const char *why)
{
	if (c->o.mode != RC_LINE)
		retrieve_client_step(c, what, 0, why);
	retrieve_client_end(c, 0, "%s; nothing sent (no AUTH)", why);
}

/* atrn_tls = required and no TLS to be had: QUIT, nothing else sent. */
static void rc_no_tls(struct retrieve_client *c, const char *why)
{
	if (c->o.mode != RC_LINE)
		retrieve_client_step(c, "no TLS", 0, why);
	retrieve_client_send_quit(c);
	retrieve_client_end(c, 0, "atrn_tls = required, but %s; nothing sent (no AUTH)", why);
}

static void rc_ready(struct retrieve_client *c)
{
	c->state = RC_READY;
	c->ops->ready(c, c->arg);
}

static void rc_no_auth(struct retrieve_client *c)
{
	if (c->o.mode == RC_LINE)
		return retrieve_client_end(c, 0,
					   "the hub offers no AUTH CRAM-MD5 or PLAIN on this port");
	retrieve_client_send_quit(c);
	retrieve_client_end(c, 0, "no usable AUTH at the hub (%s)",
			    c->tls ? "PLAIN not offered" : "no CRAM-MD5 and no TLS");
}

/* CRAM-MD5 without TLS (on the line: unless PLAIN is there under TLS), else
 * PLAIN under TLS (on the line: PLAIN in clear too). */
static void rc_auth(struct retrieve_client *c)
{
	int line = c->o.mode == RC_LINE, plain = c->caps.plain;
	char *enc;

	if (c->caps.cram && (line ? !(c->tls && plain) : !c->tls)) {
		c->cram = 1;
		return rc_send(c, RC_AUTH, "AUTH CRAM-MD5");
	}
	if (!plain || !(c->tls || line))
		return rc_no_auth(c);
	enc = odmr_client_plain(c->o.cred);
	rc_send(c, RC_AUTH, "AUTH PLAIN %s", enc);
	free(enc);
}

static void rc_auth_or_ready(struct retrieve_client *c)
{
	if (c->o.cred)
		return rc_auth(c);
	rc_ready(c);
}

static void rc_cram(struct retrieve_client *c, const char *challenge64)
{
	char *enc = odmr_client_cram(c->o.cred, challenge64);

	rc_send(c, RC_AUTH, "%s", enc ? enc : "*");
	free(enc);
	if (enc && c->early && c->ops->pipelined && c->ops->pipelined(c, c->arg))
		c->state = RC_OFF; /* the method reads AUTH's reply */
}

static void rc_auth_reply(struct retrieve_client *c, int code, const char *text)
{
	if (code == 334 && c->cram)
		return rc_cram(c, text);
	retrieve_client_step(c, code == 235 ? "authenticated" : "authentication refused", code,
			     text);
	if (code == 235)
		return rc_ready(c);
	if (c->o.mode != RC_LINE)
		retrieve_client_send_quit(c);
	retrieve_client_end(c, 0, "AUTH as %s refused: %d %s", c->o.cred->user, code, text);
}

static void rc_read_cb(struct bufferevent *bev, void *arg);
static void rc_event_cb(struct bufferevent *bev, short what, void *arg);

/* TLS over its own connection's socket, in place of the plain bev. */
static struct bufferevent *rc_tls_socket(struct retrieve_client *c, SSL *ssl)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	struct bufferevent *tb = bufferevent_openssl_socket_new(
	    c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);

	if (tb == NULL) /* libevent freed ssl (BEV_OPT_CLOSE_ON_FREE) */
		return NULL;
	bufferevent_setfd(c->bev, -1);
	bufferevent_free(c->bev);
	c->bev = tb;
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bufferevent_setcb(tb, rc_read_cb, NULL, rc_event_cb, c);
	return tb;
}

/* 220 to STARTTLS: the handshake; EHLO follows once the hub's certificate
 * passed odmr_client_tls_check (retrieve_client_tls_event). */
static void rc_starttls(struct retrieve_client *c)
{
	struct buf why = BUF_INIT;
	struct bufferevent *tb = NULL;
	SSL *ssl;

	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		return retrieve_client_end(c, 0,
					   "data after the hub's STARTTLS reply (injection?)");
	c->tls = 1;
	c->state = RC_TLS; /* before the handshake can report anything */
	if ((ssl = odmr_client_tls_ssl(c->o.sc, c->o.host, &why)) != NULL)
		tb = c->ops->tls_wrap ? c->ops->tls_wrap(ssl, c->arg) : rc_tls_socket(c, ssl);
	if (tb == NULL) {
		if (ssl && c->ops->tls_wrap) /* libevent freed the line's bev too */
			c->bev = NULL;
		retrieve_client_end(c, 0, "cannot start TLS: %s",
				    why.len ? buf_cstr(&why) : "libevent");
		buf_free(&why);
		return;
	}
	c->bev = tb;
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}

/* The handshake is done: check the certificate before anything is sent. */
static void rc_tls_up(struct retrieve_client *c, struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	struct buf why = BUF_INIT;

	if (odmr_client_tls_check(c->o.sc, ssl, &why) < 0) {
		rc_tls_fail(c, "TLS refused", buf_cstr(&why));
	} else {
		retrieve_client_step(c, "TLS started", 0, buf_cstr(&why));
		rc_send(c, RC_EHLO, "EHLO %s", c->o.cfg->hostname);
	}
	buf_free(&why);
}

int retrieve_client_tls_event(struct retrieve_client *c, struct bufferevent *bev, short what)
{
	struct buf why = BUF_INIT;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == RC_TLS)
			rc_tls_up(c, bev);
		return 1;
	}
	if (c->state != RC_TLS || (what & BEV_EVENT_TIMEOUT))
		return 0;
	odmr_client_tls_error(bev, &why);
	rc_tls_fail(c, "TLS failed", buf_cstr(&why));
	buf_free(&why);
	return 1;
}

/* EHLO answered: STARTTLS as atrn_tls says, else AUTH (or the method). */
static void rc_ehlo(struct retrieve_client *c, const char *text)
{
	int policy = c->o.sc->atrn_tls;

	odmr_client_caps(text, &c->caps);
	if (c->early) { /* AUTH CRAM-MD5 is on its way: its 334 comes next */
		c->state = RC_AUTH;
		return;
	}
	if (!c->tls && policy != ODMR_TLS_NONE && c->caps.starttls)
		return rc_send(c, RC_STARTTLS, "STARTTLS");
	if (!c->tls && policy == ODMR_TLS_REQUIRED)
		return rc_no_tls(c, "the hub does not offer STARTTLS");
	rc_auth_or_ready(c);
}

static void rc_starttls_reply(struct retrieve_client *c, int code)
{
	if (code == 220)
		return rc_starttls(c);
	if (c->o.sc->atrn_tls == ODMR_TLS_REQUIRED)
		return rc_no_tls(c, "the hub refused STARTTLS");
	rc_auth_or_ready(c);
}

/* --- the dialogue --------------------------------------------------------------- */

static void rc_refused(struct retrieve_client *c, int stage, int code, const char *text)
{
	if (c->ops->refused)
		return c->ops->refused(c, stage, code, text, c->arg);
	retrieve_client_end(c, 0, "%s refused: %d %s",
			    stage == RC_REFUSED_GREETING ? "hub greeting"
			    : stage == RC_REFUSED_EHLO	 ? "EHLO"
							 : "HELO",
			    code, text);
}

static void rc_greeting(struct retrieve_client *c, int code, const char *text)
{
	if (c->o.mode == RC_LINE)
		retrieve_client_step(c, "greeting", code, text);
	if (code != 220)
		return rc_refused(c, RC_REFUSED_GREETING, code, text);
	c->dialmail =
	    strlen(text) >= 15 && strcmp(text + strlen(text) - 15, " ESMTP dialmail") == 0;
	if (c->early)
		c->state = RC_EHLO; /* sent already */
	else
		rc_send(c, RC_EHLO, "EHLO %s", c->o.cfg->hostname);
}

/* ETRN and TURN take any 2xx and try HELO after a refusal; ATRN wants 250
 * and the offers in it. */
static void rc_ehlo_reply(struct retrieve_client *c, int code, const char *text)
{
	if (c->o.mode == RC_SMTP && code / 100 == 2) {
		odmr_client_caps(text, &c->caps); /* XDMBATCH: a dialmail peer */
		return rc_ready(c);
	}
	if (c->o.mode == RC_SMTP)
		return rc_send(c, RC_HELO, "HELO %s", c->o.cfg->hostname);
	if (code != 250)
		return rc_refused(c, RC_REFUSED_EHLO, code, text);
	rc_ehlo(c, text);
}

static void rc_reply(struct retrieve_client *c, int code, const char *text)
{
	switch (c->state) {
	case RC_GREET:
		return rc_greeting(c, code, text);
	case RC_EHLO:
		return rc_ehlo_reply(c, code, text);
	case RC_HELO:
		if (code / 100 != 2)
			return rc_refused(c, RC_REFUSED_HELO, code, text);
		return rc_ready(c);
	case RC_STARTTLS:
		return rc_starttls_reply(c, code);
	case RC_AUTH:
		return rc_auth_reply(c, code, text);
	case RC_CMD:
		return c->ops->reply(c, code, text, c->arg);
	case RC_QUIT:
		return retrieve_client_end(c, c->quit_ok, "%s", c->quit_text);
	default:
		return;
	}
}

/* One reply line: 1 when the reply is complete (*code set), 0 when more
 * lines follow, -1 for a line that is no reply (o.malformed set). ETRN and
 * TURN check the final line only, ATRN every line (odmr_client_reply_line). */
static int rc_reply_line(struct retrieve_client *c, const char *line, size_t n, int *code)
{
	int last = n < 4 || line[3] != '-';

	if (c->o.mode != RC_SMTP) {
		*code = odmr_client_reply_line(
		    &c->reply, c->o.mode == RC_LINE ? RC_LINE_REPLY_MAX : SIZE_MAX, line, n);
		return *code < 0 ? -1 : *code > 0;
	}
	*code = n >= 3 ? atoi(line) : 0;
	if (c->reply.len < RC_SMTP_REPLY_MAX)
		buf_printf(&c->reply, "%s%s", c->reply.len ? "; " : "", n > 4 ? line + 4 : "");
	if (!last)
		return 0;
	return c->o.malformed && (*code < 100 || *code > 599) ? -1 : 1;
}

static int rc_reading(const struct retrieve_client *c)
{
	return c->state < RC_TLS;
}

void retrieve_client_read(struct retrieve_client *c, struct evbuffer *in)
{
	size_t n;
	char *line;
	int code, r;

	while (rc_reading(c) && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		r = rc_reply_line(c, line, n, &code);
		free(line);
		if (r < 0)
			return retrieve_client_end(c, 0, "%s", c->o.malformed);
		if (r == 0)
			continue;
		rc_reply(c, code, buf_cstr(&c->reply));
		buf_reset(&c->reply);
	}
}

/* --- its own connection ----------------------------------------------------------- */

static void rc_read_cb(struct bufferevent *bev, void *arg)
{
	struct retrieve_client *c = arg;

	if (bev == c->bev)
		retrieve_client_read(c, bufferevent_get_input(bev));
}

static void rc_lost(struct retrieve_client *c, short what)
{
	struct buf w = BUF_INIT;

	if (c->ops->lost)
		return c->ops->lost(c, what, c->arg);
	if (what & BEV_EVENT_TIMEOUT)
		buf_puts(&w, "timed out");
	else if (what & BEV_EVENT_EOF)
		buf_printf(&w, "closed by %s", c->o.peer);
	else
		buf_puts(&w, "failed");
	retrieve_client_end(c, 0, "connection to %s port %d %s", c->o.host, c->o.port,
			    buf_cstr(&w));
	buf_free(&w);
}

/* The connection is gone: nothing more can leave, so it is freed at once;
 * after QUIT that is the end the method asked for. */
static void rc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct retrieve_client *c = arg;

	if (retrieve_client_tls_event(c, bev, what) || bev != c->bev)
		return;
	bufferevent_free(bev);
	c->bev = NULL;
	if (c->state == RC_QUIT)
		return retrieve_client_end(c, c->quit_ok, "%s", c->quit_text);
	rc_lost(c, what);
}

static void rc_connected(struct bufferevent *bev, const char *why, void *arg)
{
	struct retrieve_client *c = arg;
	struct timeval tv = {c->o.sc->retrieve_timeout, 0};

	c->conn = NULL;
	if (bev == NULL)
		return retrieve_client_end(c, 0, "%s", why);
	c->bev = bev;
	bufferevent_setcb(bev, rc_read_cb, NULL, rc_event_cb, c);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	retrieve_client_step(c, "connected", 0, NULL);
}

static struct retrieve_client *rc_new(struct event_base *base,
				      const struct retrieve_client_opts *opts,
				      const struct retrieve_client_ops *ops, void *arg)
{
	struct retrieve_client *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->o = *opts;
	c->o.host = opts->host ? xstrdup(opts->host) : NULL;
	c->o.malformed = opts->malformed ? xstrdup(opts->malformed) : NULL;
	c->ops = ops;
	c->arg = arg;
	c->state = RC_GREET;
	return c;
}

struct retrieve_client *retrieve_client_connect(struct event_base *base,
						const struct retrieve_client_opts *opts,
						const struct retrieve_client_ops *ops, void *arg,
						struct buf *why)
{
	struct retrieve_client *c = rc_new(base, opts, ops, arg);

	c->own = 1;
	c->conn = rc_conn_start(base, opts->cfg, c->o.host, opts->port, opts->sc->retrieve_timeout,
				rc_connected, c, why);
	if (c->conn == NULL) {
		retrieve_client_free(c);
		return NULL;
	}
	return c;
}

struct retrieve_client *retrieve_client_attach(struct event_base *base, struct bufferevent *bev,
					       const struct retrieve_client_opts *opts,
					       const struct retrieve_client_ops *ops, void *arg)
{
	struct retrieve_client *c = rc_new(base, opts, ops, arg);

	c->bev = bev;
	if (opts->early && opts->cred && opts->mode == RC_LINE) {
		c->early = c->cram = 1;
		evbuffer_add_printf(bufferevent_get_output(bev), "EHLO %s\r\nAUTH CRAM-MD5\r\n",
				    opts->cfg->hostname);
	}
	return c;
}

/* --- after the dialogue ------------------------------------------------------------- */

static void rc_on_close(int quit, void *arg)
{
	struct retrieve_client *c = arg;

	c->adopted = NULL;
	c->ops->closed(c, quit, c->arg);
}

void retrieve_client_reverse(struct retrieve_client *c, struct smtp_server *smtp)
{
	struct bufferevent *bev = c->bev;

	c->bev = NULL;
	c->state = RC_OFF;
	c->smtp = smtp;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	c->adopted =
	    smtp_server_adopt(smtp, bev, c->o.host, retrieve_client_adopt_flags(c), rc_on_close, c);
}

void retrieve_client_detach(struct retrieve_client *c)
{
	c->state = RC_OFF;
}

int retrieve_client_tls(const struct retrieve_client *c)
{
	return c->tls;
}

unsigned retrieve_client_adopt_flags(const struct retrieve_client *c)
{
	return (c->tls ? SMTP_ADOPT_TLS : 0) | (c->caps.xdmbatch ? SMTP_ADOPT_DIALMAIL : 0);
}

int retrieve_client_dialmail(const struct retrieve_client *c)
{
	return c->dialmail;
}

const struct odmr_client_caps *retrieve_client_caps(const struct retrieve_client *c)
{
	return &c->caps;
}

int retrieve_client_greeted(const struct retrieve_client *c)
{
	return c->state != RC_GREET;
}

const char *retrieve_client_host(const struct retrieve_client *c)
{
	return c->o.host;
}

int retrieve_client_port(const struct retrieve_client *c)
{
	return c->o.port;
}
