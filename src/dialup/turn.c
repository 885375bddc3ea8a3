/* TURN retrieval (RFC 821 section 3.8 / 4.1.1): greet, EHLO (HELO if refused),
 * TURN; 250 reverses the roles and smtp_server_adopt serves the provider on
 * the same connection until its QUIT; 502 or any other reply ends retrieval.
 * Invariant: every TURN use and its end is a warning event 4125. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "mail/event.h"
#include "dialup/retrieve.h"
#include "dialup/turn.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "smtp/smtp_server.h"

#define TURN_REPLY_MAX 4096

int turn_config_check(const struct config *cfg, const char *path, struct buf *err)
{
	const struct session_config *sc = cfg->session;

	if (sc == NULL || sc->retrieve == NULL || strcasecmp(sc->retrieve, "turn") != 0 ||
	    cfg->turn_enabled)
		return 0;
	buf_printf(err,
		   "%s:%d: [session]: retrieve = turn needs turn_enabled = yes: TURN (RFC 821) "
		   "is insecure, anyone who can reach the provider as this client gets the "
		   "mail; use retrieve = atrn (RFC 2645, with AUTH) if the provider offers it\n",
		   path, sc->line);
	return 1;
}

enum turn_state { TS_GREET, TS_EHLO, TS_HELO, TS_TURN, TS_QUIT, TS_ADOPTED };

struct turn_branch {
	struct retrieval_ctx ctx;
	void (*done)(int ok, const char *text, void *arg);
	void *arg;
	char *host;
	struct bufferevent *bev;
	enum turn_state state;
	struct buf reply; /* lines joined by "; " */
	struct smtp_adopted *adopted;
	struct retrieve_conn *conn; /* resolving and connecting */
	struct event *ev_end;
	int end_ok;
	char *end_text;
	char *refused; /* the end text while QUIT goes out after a refusal */
	unsigned msgs0;
};

static void turn_event(struct turn_branch *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void turn_event(struct turn_branch *t, int code, const char *fmt, ...)
{
	char c[8];
	const char *kv[] = {"host", t->host, "code", c, NULL};
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	snprintf(c, sizeof(c), "%d", code);
	event_logkv(EV_RETRIEVE_TURN, kv, "TURN retrieval at %s port %d: %s", t->host, t->ctx.port,
		    buf_cstr(&b));
	buf_free(&b);
}

void turn_branch_free(struct turn_branch *t)
{
	if (t == NULL)
		return;
	if (t->adopted)
		smtp_server_adopt_forget(t->ctx.smtp, t->adopted);
	retrieve_connect_cancel(t->conn);
	if (t->bev)
		bufferevent_free(t->bev);
	if (t->ev_end)
		event_free(t->ev_end);
	buf_free(&t->reply);
	free(t->end_text);
	free(t->refused);
	free(t->host);
	free(t);
}

static void turn_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct turn_branch *t = arg;
	void (*done)(int, const char *, void *) = t->done;
	void *darg = t->arg;
	int ok = t->end_ok;
	char *text = t->end_text;

	t->end_text = NULL;
	turn_branch_free(t);
	done(ok, text, darg);
	free(text);
}

/* Ends the job from a timer, so done never runs inside a caller of ours. */
static void turn_end(struct turn_branch *t, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void turn_end(struct turn_branch *t, int ok, const char *fmt, ...)
{
	struct timeval now = {0, 0};
	struct buf b = BUF_INIT;
	va_list ap;

	if (t->ev_end)
		return;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	t->end_ok = ok;
	t->end_text = buf_steal(&b);
	if (t->bev) {
		bufferevent_free(t->bev);
		t->bev = NULL;
	}
	t->ev_end = evtimer_new(t->ctx.base, turn_end_cb, t);
	evtimer_add(t->ev_end, &now);
}

static void turn_send(struct turn_branch *t, enum turn_state next, const char *verb,
		      const char *arg)
{
	evbuffer_add_printf(bufferevent_get_output(t->bev), "%s%s%s\r\n", verb, arg ? " " : "",
			    arg ? arg : "");
	t->state = next;
}

static void turn_on_close(int quit, void *arg)
{
	struct turn_branch *t = arg;
	unsigned got = t->ctx.msgs_in ? *t->ctx.msgs_in - t->msgs0 : 0;

	t->adopted = NULL;
	turn_event(t, quit ? 221 : 0, "%s (%u messages received)",
		   quit ? "the provider sent QUIT: retrieval complete"
			: "the connection ended before the provider's QUIT",
		   got);
	if (quit)
		turn_end(t, 1, "TURN at %s: %u messages received, provider sent QUIT", t->host,
			 got);
	else
		turn_end(t, 0, "TURN at %s: connection lost after %u messages", t->host, got);
}

/* 250 to TURN: this end is now the SMTP server on the connection. */
static void turn_reverse(struct turn_branch *t)
{
	struct bufferevent *bev = t->bev;

	t->bev = NULL;
	t->state = TS_ADOPTED;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	t->adopted = smtp_server_adopt(t->ctx.smtp, bev, t->host, 0, turn_on_close, t);
}

static void turn_reply(struct turn_branch *t, int code, const char *text)
{
	const char *me = t->ctx.cfg->hostname;

	switch (t->state) {
	case TS_GREET:
		if (code != 220)
			return turn_end(t, 0, "%s greeted with %d %s", t->host, code, text);
		return turn_send(t, TS_EHLO, "EHLO", me);
	case TS_EHLO:
		if (code / 100 != 2)
			return turn_send(t, TS_HELO, "HELO", me);
		return turn_send(t, TS_TURN, "TURN", NULL);
	case TS_HELO:
		if (code / 100 != 2) {
			turn_send(t, TS_QUIT, "QUIT", NULL);
			return turn_end(t, 0, "%s refused HELO: %d %s", t->host, code, text);
		}
		return turn_send(t, TS_TURN, "TURN", NULL);
	case TS_TURN:
		if (code == 250) {
			turn_event(t, code,
				   "TURN used (insecure: RFC 821 TURN does not authenticate this "
				   "site; prefer retrieve = atrn): %d %s; roles reversed",
				   code, text);
			return turn_reverse(t);
		}
		turn_event(t, code, "TURN refused: %d %s", code, text);
		t->refused = xasprintf("TURN at %s refused: %d %s", t->host, code, text);
		return turn_send(t, TS_QUIT, "QUIT", NULL);
	case TS_QUIT:
		return turn_end(t, 0, "%s", t->refused);
	default:
		return;
	}
}

/* Reads reply lines; a reply ends at "NNN " (RFC 5321 4.2.1). */
static void turn_on_read(struct bufferevent *bev, void *arg)
{
	struct turn_branch *t = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while (t->bev == bev && t->state != TS_ADOPTED && !t->ev_end &&
	       (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		int last = n < 4 || line[3] != '-';
		int code = n >= 3 ? atoi(line) : 0;

		if (t->reply.len < TURN_REPLY_MAX)
			buf_printf(&t->reply, "%s%s", t->reply.len ? "; " : "",
				   n > 4 ? line + 4 : "");
		free(line);
		if (!last)
			continue;
		if (code < 100 || code > 599)
			return turn_end(t, 0, "malformed reply from %s", t->host);
		turn_reply(t, code, buf_cstr(&t->reply));
		buf_reset(&t->reply);
	}
}

static void turn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct turn_branch *t = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (t->refused)
		return turn_end(t, 0, "%s", t->refused);
	turn_end(t, 0, "connection to %s port %d %s", t->host, t->ctx.port,
		 what & BEV_EVENT_TIMEOUT ? "timed out"
		 : what & BEV_EVENT_EOF	  ? "closed by the provider"
					  : "failed");
}

static void turn_connected(struct bufferevent *bev, const char *why, void *arg)
{
	struct turn_branch *t = arg;

	t->conn = NULL;
	if (bev == NULL)
		return turn_end(t, 0, "%s", why);
	t->bev = bev;
	retrieve_conn_own(bev, turn_on_read, turn_on_event, t, t->ctx.sc->retrieve_timeout);
}

struct turn_branch *turn_branch_start(const struct retrieval_ctx *ctx,
				      void (*done)(int ok, const char *text, void *arg), void *arg,
				      struct buf *why)
{
	struct turn_branch *t = xcalloc(1, sizeof(*t));

	t->ctx = *ctx;
	t->done = done;
	t->arg = arg;
	t->msgs0 = ctx->msgs_in ? *ctx->msgs_in : 0;
	if (ctx->host == NULL || ctx->smtp == NULL) {
		buf_puts(why, ctx->host == NULL
				  ? "no route with a smarthost goes through the link: nowhere to "
				    "send TURN"
				  : "no SMTP server to receive the mail");
		goto fail;
	}
	t->host = xstrdup(ctx->host);
	t->state = TS_GREET;
	t->conn = retrieve_connect(ctx->base, ctx->cfg, t->host, ctx->port,
				   ctx->sc->retrieve_timeout, turn_connected, t, why);
	if (t->conn == NULL)
		goto fail;
	return t;
fail:
	turn_branch_free(t);
	return NULL;
}
