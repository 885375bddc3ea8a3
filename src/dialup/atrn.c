/* ATRN retrieval (RFC 2645), the branch's side of On-Demand Mail Relay:
 * connect to the hub's ODMR port, EHLO, STARTTLS as atrn_tls says, AUTH,
 * ATRN for the site's domains; on 250 the connection becomes an SMTP server
 * session (smtp_server_adopt) that receives the held mail. Invariant: with
 * a TLS check configured, nothing (no AUTH) is sent before the hub's
 * certificate passed it. The hub's side is hub/odmr.c. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>

#include "dialup/odmr_client.h"
#include "dialup/atrn.h"
#include "dialup/retrieve.h"
#include "lib/clock.h"
#include "lib/fingerprint.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "mail/event.h"
#include "mail/policy.h"
#include "mail/routes.h"
#include "smtp/smtp_server.h"
#include "smtp/tls.h"

enum atrn_key { AK_HOST, AK_DOMAINS, AK_AUTH, AK_TLS, AK_CA, AK_PIN, AK_COUNT };
static const char *const atrn_keys[AK_COUNT] = {"atrn_host", "atrn_domains", "atrn_auth",
						"atrn_tls",  "atrn_ca",	     "atrn_fingerprint"};

/* atrn_tls, atrn_ca, atrn_fingerprint: 0, or -1 with problem filled. */
static int atrn_config_tls(struct session_config *sc, int k, const char *value, struct buf *problem)
{
	FILE *f;

	if (k == AK_TLS) {
		if ((sc->atrn_tls = odmr_client_tls_policy(value)) >= 0)
			return 0;
		buf_printf(problem, "'%s' is not none, opportunistic or required", value);
		return -1;
	}
	if (k == AK_PIN) {
		if ((sc->atrn_fingerprint = fingerprint_parse(value)) != NULL)
			return 0;
		buf_printf(problem, "'%s' is not sha256:HEX (64 hex digits)", value);
		return -1;
	}
	if ((f = fopen(value, "r")) == NULL) { /* a typo is a config error */
		buf_printf(problem, "%s: cannot open: %s", value, strerror(errno));
		return -1;
	}
	fclose(f);
	sc->atrn_ca = xstrdup(value);
	return 0;
}

int atrn_config_line(struct session_config *sc, const char *key, const char *value,
		     struct buf *problem)
{
	int k;

	for (k = 0; k < AK_COUNT && strcmp(key, atrn_keys[k]) != 0; k++)
		;
	if (k == AK_COUNT)
		return 1;
	if (sc->atrn_set & (1u << k)) {
		buf_puts(problem, "set twice in [session]");
		return -1;
	}
	sc->atrn_set |= 1u << k;
	if (k >= AK_TLS)
		return atrn_config_tls(sc, k, value, problem);
	if (k == AK_DOMAINS) {
		strlist_split(&sc->atrn_domains, value);
		for (size_t i = 0; i < sc->atrn_domains.n; i++)
			if (!policy_domain_ok(sc->atrn_domains.v[i],
					      strlen(sc->atrn_domains.v[i]))) {
				buf_printf(problem, "'%s' is not a domain", sc->atrn_domains.v[i]);
				return -1;
			}
		return 0;
	}
	if (k == AK_HOST && (strchr(value, ' ') || *value == '\0')) {
		buf_printf(problem, "'%s' is not host[:port]", value);
		return -1;
	}
	free(k == AK_HOST ? sc->atrn_host : sc->atrn_auth);
	*(k == AK_HOST ? &sc->atrn_host : &sc->atrn_auth) = xstrdup(value);
	return 0;
}

const char *atrn_config_problem(const struct session_config *sc)
{
	if (sc->atrn_domains.n == 0)
		return "retrieve = atrn needs atrn_domains (the domains to claim)";
	if (sc->atrn_auth == NULL)
		return "retrieve = atrn needs atrn_auth (a NAME of auth_file: RFC 2645 "
		       "requires AUTH)";
	return NULL;
}

void atrn_config_show(const struct session_config *sc, FILE *out)
{
	fprintf(out, "atrn_host =%s%s\natrn_domains =", sc->atrn_host ? " " : "",
		sc->atrn_host ? sc->atrn_host : "");
	for (size_t i = 0; i < sc->atrn_domains.n; i++)
		fprintf(out, "%s%s", i ? ", " : " ", sc->atrn_domains.v[i]);
	fprintf(out, "\natrn_auth =%s%s\n", sc->atrn_auth ? " " : "",
		sc->atrn_auth ? sc->atrn_auth : "");
	fprintf(out, "atrn_tls = %s\natrn_ca =%s%s\natrn_fingerprint =%s%s\n",
		odmr_client_tls_name(sc->atrn_tls), sc->atrn_ca ? " " : "",
		sc->atrn_ca ? sc->atrn_ca : "", sc->atrn_fingerprint ? " sha256:" : "",
		sc->atrn_fingerprint ? sc->atrn_fingerprint : "");
}

void atrn_config_free(struct session_config *sc)
{
	free(sc->atrn_host);
	free(sc->atrn_auth);
	free(sc->atrn_ca);
	free(sc->atrn_fingerprint);
	strlist_free(&sc->atrn_domains);
	sc->atrn_host = sc->atrn_auth = sc->atrn_ca = sc->atrn_fingerprint = NULL;
}

enum atrn_state { AT_GREET, AT_EHLO, AT_STARTTLS, AT_TLS, AT_AUTH, AT_ATRN, AT_QUIT, AT_ADOPTED };

#define ATRN_DRAIN_MS 2000 /* at the end: how long a queued QUIT may take to leave */

struct atrn_branch {
	struct retrieval_ctx ctx;
	void (*done)(int ok, const char *text, void *arg);
	void *arg;
	char *host;
	int port;
	const struct auth_cred *cred;
	struct bufferevent *bev;
	int tls;
	enum atrn_state state;
	struct buf reply;	      /* lines joined by '\n' */
	struct odmr_client_caps caps; /* EHLO offers */
	struct smtp_adopted *adopted;
	struct retrieve_conn *conn; /* resolving and connecting */
	struct event *ev_end;
	int end_ok;
	char *end_text;
	unsigned msgs0;
};

static void atrn_step(struct atrn_branch *b, const char *what, int code, const char *text)
{
	char c[8];
	const char *kv[] = {"host", b->host, "code", c, NULL};

	snprintf(c, sizeof(c), "%d", code);
	event_logkv(EV_RETRIEVE_ATRN, kv, "ATRN retrieval at %s port %d: %s%s%s", b->host, b->port,
		    what, text ? ": " : "", text ? text : "");
}

static void atrn_release(struct atrn_branch *b)
{
	if (b->adopted)
		smtp_server_adopt_forget(b->ctx.smtp, b->adopted);
	retrieve_connect_cancel(b->conn);
	if (b->bev)
		bufferevent_free(b->bev);
	if (b->ev_end)
		event_free(b->ev_end);
	buf_free(&b->reply);
	free(b->end_text);
	free(b->host);
	free(b);
}

void atrn_free(struct atrn_branch *b)
{
	if (b)
		atrn_release(b);
}

static void atrn_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct atrn_branch *b = arg;
	void (*done)(int, const char *, void *) = b->done;
	void *darg = b->arg;
	int ok = b->end_ok;
	char *text = b->end_text;

	b->end_text = NULL;
	atrn_release(b);
	done(ok, text, darg);
	free(text);
}

/* The last command (QUIT) left, or the connection is gone: end now. */
static void atrn_drained_cb(struct bufferevent *bev, void *arg)
{
	struct atrn_branch *b = arg;
	struct timeval now = {0, 0};

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		evtimer_add(b->ev_end, &now);
}

static void atrn_drain_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct atrn_branch *b = arg;
	struct timeval now = {0, 0};

	evtimer_add(b->ev_end, &now);
}

/* Ends the job from a timer, so done never runs inside a caller of ours.
 * bufferevent_free drops unsent output: a queued QUIT (plain or TLS) gets
 * up to ATRN_DRAIN_MS to leave first. */
static void atrn_end(struct atrn_branch *b, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void atrn_end(struct atrn_branch *b, int ok, const char *fmt, ...)
{
	struct timeval tv = {0, 0};
	struct buf t = BUF_INIT;
	va_list ap;

	if (b->ev_end)
		return;
	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	b->end_ok = ok;
	b->end_text = buf_steal(&t);
	b->ev_end = evtimer_new(b->ctx.base, atrn_end_cb, b);
	if (b->bev && evbuffer_get_length(bufferevent_get_output(b->bev)) > 0) {
		bufferevent_disable(b->bev, EV_READ);
		bufferevent_setwatermark(b->bev, EV_WRITE, 0, 0);
		bufferevent_setcb(b->bev, NULL, atrn_drained_cb, atrn_drain_event_cb, b);
		tv.tv_sec = ATRN_DRAIN_MS / 1000;
		tv.tv_usec = (ATRN_DRAIN_MS % 1000) * 1000;
	} else if (b->bev) {
		bufferevent_free(b->bev);
		b->bev = NULL;
	}
	evtimer_add(b->ev_end, &tv);
}

static void atrn_send(struct atrn_branch *b, enum atrn_state next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void atrn_send(struct atrn_branch *b, enum atrn_state next, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	odmr_client_vsend(b->bev, fmt, ap);
	va_end(ap);
	b->state = next;
}

static void atrn_cram(struct atrn_branch *b, const char *challenge64)
{
	char *enc = odmr_client_cram(b->cred, challenge64);

	if (enc)
		atrn_send(b, AT_AUTH, "%s", enc);
	else
		atrn_send(b, AT_QUIT, "*");
	free(enc);
}

static void atrn_auth(struct atrn_branch *b)
{
	char *enc;

	if (!b->tls && b->caps.cram) {
		atrn_send(b, AT_AUTH, "AUTH CRAM-MD5");
		return;
	}
	if (!b->caps.plain || !b->tls) {
		atrn_send(b, AT_QUIT, "QUIT");
		atrn_end(b, 0, "no usable AUTH at the hub (%s)",
			 b->tls ? "PLAIN not offered" : "no CRAM-MD5 and no TLS");
		return;
	}
	enc = odmr_client_plain(b->cred);
	atrn_send(b, AT_AUTH, "AUTH PLAIN %s", enc);
	free(enc);
}

/* atrn_tls = required and no TLS to be had: QUIT, nothing else sent. */
static void atrn_no_tls(struct atrn_branch *b, const char *why)
{
	atrn_step(b, "no TLS", 0, why);
	atrn_send(b, AT_QUIT, "QUIT");
	atrn_end(b, 0, "atrn_tls = required, but %s; nothing sent (no AUTH)", why);
}

static void atrn_read_cb(struct bufferevent *bev, void *arg);
static void atrn_event_cb(struct bufferevent *bev, short what, void *arg);

/* 220 to STARTTLS: the handshake; EHLO follows once the hub's certificate
 * passed odmr_client_tls_check (atrn_event_cb). */
static void atrn_tls(struct atrn_branch *b)
{
	evutil_socket_t fd = bufferevent_getfd(b->bev);
	struct buf why = BUF_INIT;
	struct bufferevent *tb = NULL;
	SSL *ssl;

	if (evbuffer_get_length(bufferevent_get_input(b->bev)) > 0)
		return atrn_end(b, 0, "data after the hub's STARTTLS reply (injection?)");
	if ((ssl = odmr_client_tls_ssl(b->ctx.sc, b->host, &why)) != NULL)
		tb = bufferevent_openssl_socket_new(
		    b->ctx.base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) { /* libevent freed ssl (BEV_OPT_CLOSE_ON_FREE) */
		atrn_end(b, 0, "cannot start TLS: %s", why.len ? buf_cstr(&why) : "libevent");
		buf_free(&why);
		return;
	}
	bufferevent_setfd(b->bev, -1);
	bufferevent_free(b->bev);
	b->bev = tb;
	b->tls = 1;
	b->state = AT_TLS;
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bufferevent_setcb(tb, atrn_read_cb, NULL, atrn_event_cb, b);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}

/* The handshake is done: check the certificate before anything is sent. */
static void atrn_tls_up(struct atrn_branch *b)
{
	SSL *ssl = bufferevent_openssl_get_ssl(b->bev);
	struct buf why = BUF_INIT;

	if (odmr_client_tls_check(b->ctx.sc, ssl, &why) < 0) {
		atrn_step(b, "TLS refused", 0, buf_cstr(&why));
		atrn_end(b, 0, "%s; nothing sent (no AUTH)", buf_cstr(&why));
	} else {
		atrn_step(b, "TLS started", 0, buf_cstr(&why));
		atrn_send(b, AT_EHLO, "EHLO %s", b->ctx.cfg->hostname);
	}
	buf_free(&why);
}

static void atrn_on_close(int quit, void *arg)
{
	struct atrn_branch *b = arg;
	unsigned got = b->ctx.msgs_in ? *b->ctx.msgs_in - b->msgs0 : 0;

	b->adopted = NULL;
	atrn_step(b,
		  quit ? "the hub sent QUIT: retrieval complete"
		       : "the connection ended before the hub's QUIT",
		  quit ? 221 : 0, NULL);
	if (quit)
		atrn_end(b, 1, "ATRN at %s: %u messages received, hub sent QUIT", b->host, got);
	else
		atrn_end(b, 0, "ATRN at %s: connection lost after %u messages", b->host, got);
}

/* 250 to ATRN: this end is now the SMTP server on the connection. */
static void atrn_reverse(struct atrn_branch *b)
{
	struct bufferevent *bev = b->bev;

	b->bev = NULL;
	b->state = AT_ADOPTED;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	b->adopted = smtp_server_adopt(b->ctx.smtp, bev, b->host, b->tls, atrn_on_close, b);
}

static void atrn_atrn(struct atrn_branch *b)
{
	char *cmd = odmr_client_atrn_cmd(&b->ctx.sc->atrn_domains);

	atrn_send(b, AT_ATRN, "%s", cmd);
	free(cmd);
}

/* EHLO answered: STARTTLS as atrn_tls says, else AUTH. */
static void atrn_ehlo(struct atrn_branch *b, const char *text)
{
	int policy = b->ctx.sc->atrn_tls;

	odmr_client_caps(text, &b->caps);
	if (!b->tls && policy != ODMR_TLS_NONE && b->caps.starttls)
		return atrn_send(b, AT_STARTTLS, "STARTTLS");
	if (!b->tls && policy == ODMR_TLS_REQUIRED)
		return atrn_no_tls(b, "the hub does not offer STARTTLS");
	atrn_auth(b);
}

static void atrn_reply(struct atrn_branch *b, int code)
{
	const char *text = buf_cstr(&b->reply);

	switch (b->state) {
	case AT_GREET:
		if (code != 220)
			return atrn_end(b, 0, "hub greeting refused: %d %s", code, text);
		return atrn_send(b, AT_EHLO, "EHLO %s", b->ctx.cfg->hostname);
	case AT_EHLO:
		if (code != 250)
			return atrn_end(b, 0, "EHLO refused: %d %s", code, text);
		return atrn_ehlo(b, text);
	case AT_STARTTLS:
		if (code == 220)
			return atrn_tls(b);
		if (b->ctx.sc->atrn_tls == ODMR_TLS_REQUIRED)
			return atrn_no_tls(b, "the hub refused STARTTLS");
		return atrn_auth(b);
	case AT_AUTH:
		if (code == 334)
			return atrn_cram(b, text);
		atrn_step(b, code == 235 ? "authenticated" : "authentication refused", code, text);
		if (code != 235) {
			atrn_send(b, AT_QUIT, "QUIT");
			return atrn_end(b, 0, "AUTH as %s refused: %d %s", b->cred->user, code,
					text);
		}
		return atrn_atrn(b);
	case AT_ATRN:
		atrn_step(b, code == 250 ? "ATRN accepted, roles reversed" : "ATRN reply", code,
			  text);
		if (code == 250)
			return atrn_reverse(b);
		atrn_send(b, AT_QUIT, "QUIT");
		if (code == 453)
			return atrn_end(b, 1, "ATRN at %s: no mail waiting (%d %s)", b->host, code,
					text);
		return atrn_end(b, 0, "ATRN at %s refused: %d %s", b->host, code, text);
	default:
		return;
	}
}

static void atrn_read_cb(struct bufferevent *bev, void *arg)
{
	struct atrn_branch *b = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while (b->bev == bev && b->state != AT_ADOPTED && b->state != AT_TLS && !b->ev_end &&
	       (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		int code = odmr_client_reply_line(&b->reply, SIZE_MAX, line, n);

		free(line);
		if (code < 0)
			return atrn_end(b, 0, "malformed reply from the hub");
		if (code == 0)
			continue;
		atrn_reply(b, code);
		buf_reset(&b->reply);
	}
}

static void atrn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct atrn_branch *b = arg;
	struct buf why = BUF_INIT;

	if (what & BEV_EVENT_CONNECTED) {
		if (b->state == AT_TLS)
			atrn_tls_up(b);
		return;
	}
	if (b->state == AT_TLS && !(what & BEV_EVENT_TIMEOUT)) {
		odmr_client_tls_error(bev, &why);
		atrn_step(b, "TLS failed", 0, buf_cstr(&why));
		atrn_end(b, 0, "%s; nothing sent (no AUTH)", buf_cstr(&why));
		buf_free(&why);
		return;
	}
	atrn_end(b, 0, "connection to %s port %d %s", b->host, b->port,
		 what & BEV_EVENT_TIMEOUT ? "timed out"
		 : what & BEV_EVENT_EOF	  ? "closed by the hub"
					  : "failed");
}

/* atrn_host, else the link route's smarthost; port 366 unless given. */
static void atrn_target(struct atrn_branch *b)
{
	const char *h = b->ctx.sc->atrn_host ? b->ctx.sc->atrn_host : b->ctx.host;

	b->port = ODMR_PORT;
	b->host = h ? odmr_client_host(h, &b->port) : NULL;
}

static void atrn_connected(struct bufferevent *bev, const char *why, void *arg)
{
	struct atrn_branch *b = arg;

	b->conn = NULL;
	if (bev == NULL)
		return atrn_end(b, 0, "%s", why);
	b->bev = bev;
	retrieve_conn_own(bev, atrn_read_cb, atrn_event_cb, b, b->ctx.sc->retrieve_timeout);
	atrn_step(b, "connected", 0, NULL);
}

struct atrn_branch *atrn_start(const struct retrieval_ctx *ctx,
			       void (*done)(int ok, const char *text, void *arg), void *arg,
			       struct buf *why)
{
	struct atrn_branch *b = xcalloc(1, sizeof(*b));

	b->ctx = *ctx;
	b->done = done;
	b->arg = arg;
	b->msgs0 = ctx->msgs_in ? *ctx->msgs_in : 0;
	atrn_target(b);
	b->cred = ctx->sc->atrn_auth ? routes_auth(ctx->cfg->routes, ctx->sc->atrn_auth) : NULL;
	if (b->host == NULL || b->cred == NULL || ctx->smtp == NULL) {
		buf_printf(why, "%s",
			   b->host == NULL   ? "no atrn_host and no smarthost for the link"
			   : b->cred == NULL ? "atrn_auth names no credentials of auth_file"
					     : "no SMTP server to receive the mail");
		goto fail;
	}
	b->state = AT_GREET;
	b->conn = retrieve_connect(ctx->base, ctx->cfg, b->host, b->port, ctx->sc->retrieve_timeout,
				   atrn_connected, b, why);
	if (b->conn == NULL)
		goto fail;
	return b;
fail:
	atrn_release(b);
	return NULL;
}
