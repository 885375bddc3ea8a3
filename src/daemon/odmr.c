/* On-Demand Mail Relay (RFC 2645). Hub: an SMTP server on odmr_listen in
 * ODMR mode (smtp_server_set_odmr) answers ATRN here; on 250 the SMTP client
 * engine runs on the same connection with the held mail of the claimed
 * domains. Branch: the ATRN retrieval job; on 250 the connection becomes an
 * SMTP server session (smtp_server_adopt). Invariant: a held recipient is
 * marked delivered only on the site's 2xx for it; the rest stays held. */
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

#include "daemon/delivery.h"
#include "daemon/event.h"
#include "daemon/hub.h"
#include "daemon/odmr.h"
#include "daemon/odmr_common.h"
#include "daemon/outbound.h"
#include "daemon/retrieve.h"
#include "daemon/routes.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "smtp/dsn.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_server.h"
#include "smtp/tls.h"

/* ------------------------------------------------------------- settings */

int odmr_check_domains_item(const char *item, struct buf *problem)
{
	const char *eq = strchr(item, '=');

	if (eq == NULL || eq == item || !odmr_common_domain_ok(eq + 1, strlen(eq + 1))) {
		buf_printf(problem, "'%s' is not user=domain", item);
		return -1;
	}
	return 0;
}

int odmr_user_owns(const struct config *cfg, const char *user, const char *domain)
{
	size_t ul = strlen(user);

	for (size_t i = 0; i < cfg->odmr_domains.n; i++) {
		const char *it = cfg->odmr_domains.v[i];
		if (strncasecmp(it, user, ul) == 0 && it[ul] == '=' &&
		    strcasecmp(it + ul + 1, domain) == 0)
			return 1;
	}
	return 0;
}

/* "a.example,b.example" (blanks allowed) into lower-case domains; an empty
 * list means every domain of odmr_domains the user may claim. -1: syntax. */
static int odmr_parse_domains(const struct config *cfg, const char *user, const char *param,
			      struct strlist *out)
{
	struct strlist l = {0};
	char *p = xstrdup(param);

	for (char *c = p; *c; c++)
		*c = *c == ',' ? ' ' : (char)tolower((unsigned char)*c);
	for (char *tok = strtok(p, " "); tok; tok = strtok(NULL, " "))
		strlist_add(&l, tok);
	free(p);
	for (size_t i = 0; i < l.n; i++)
		if (!odmr_common_domain_ok(l.v[i], strlen(l.v[i]))) {
			strlist_free(&l);
			return -1;
		}
	for (size_t i = 0; param[strspn(param, " ,")] == '\0' && i < cfg->odmr_domains.n; i++) {
		const char *it = cfg->odmr_domains.v[i], *eq = strchr(it, '=');
		if (eq && (size_t)(eq - it) == strlen(user) &&
		    strncasecmp(it, user, strlen(user)) == 0)
			strlist_add(&l, eq + 1);
	}
	*out = l;
	return 0;
}

/* ------------------------------------------------------------ hub side */

struct odmr_conn {
	struct odmr_hub *h;
	char *client, *user;
	struct strlist domains;
	struct odmr_common_batch b; /* the held mail carried */
	struct odmr_common_peer peer;
	char *label;
	struct smtpc *c;
	struct odmr_conn *next;
};

struct odmr_hub {
	struct event_base *base;
	const struct config *cfg;
	struct queue *q;
	struct delivery *d;
	struct smtp_server *srv;
	struct odmr_conn *conns;
};

/* 1 if rcpt r is held here for one of domains and still pending. */
struct odmr_scan {
	struct odmr_hub *h;
	const struct strlist *domains;
	struct odmr_conn *cn; /* NULL: count only */
	unsigned n;
};

static int odmr_rcpt_claimed(const struct q_rcpt *r, void *arg)
{
	const struct odmr_scan *sc = arg;
	const char *at = strrchr(r->addr, '@');

	return r->state == RCPT_PENDING && at && strlist_has_nocase(sc->domains, at + 1) &&
	       hub_held(sc->h->cfg, at + 1);
}

static int odmr_scan_one(const char *id, void *arg)
{
	struct odmr_scan *sc = arg;

	sc->n += (unsigned)odmr_common_batch_load(sc->cn ? &sc->cn->b : NULL, sc->h->q, id,
						  sc->cn != NULL, odmr_rcpt_claimed, sc);
	return 0;
}

static int odmr_busy(const struct odmr_hub *h, const struct strlist *domains)
{
	for (const struct odmr_conn *cn = h->conns; cn; cn = cn->next)
		for (size_t i = 0; i < domains->n; i++)
			if (strlist_has_nocase(&cn->domains, domains->v[i]))
				return 1;
	return 0;
}

static void odmr_refused(const char *client, const char *user, const char *param, const char *reply)
{
	const char *kv[] = {"client", client, "user", user, "domains", param, NULL};

	event_logkv(EV_ODMR_ATRN_REFUSED, kv, "ATRN %s from %s (user %s) refused: %s", param,
		    client, user, reply);
}

/* smtp_server_set_odmr's atrn: 1 with "250" when the connection reverses. */
static int odmr_atrn(const char *client, const char *user, const char *param, struct buf *reply,
		     void *arg)
{
	struct odmr_hub *h = arg;
	struct strlist domains = {0};
	struct odmr_scan sc = {h, &domains, NULL, 0};
	int rc = 0;

	if (odmr_parse_domains(h->cfg, user, param, &domains) < 0) {
		buf_puts(reply, "501 5.5.4 Syntax: ATRN domain[,domain...]");
		return 0;
	}
	for (size_t i = 0; i < domains.n && reply->len == 0; i++)
		if (!odmr_user_owns(h->cfg, user, domains.v[i]))
			buf_printf(reply, "450 4.7.1 ATRN request refused: %s may not claim %s",
				   user, domains.v[i]);
	if (reply->len == 0 && domains.n == 0)
		buf_printf(reply, "450 4.7.1 ATRN request refused: no domains for %s", user);
	if (reply->len) {
		odmr_refused(client, user, param, buf_cstr(reply));
		goto out;
	}
	if (odmr_busy(h, &domains)) {
		buf_puts(reply, "451 4.4.0 Unable to process ATRN request now: a delivery for "
				"these domains is in progress");
		goto out;
	}
	queue_scan(h->q, odmr_scan_one, &sc);
	if (sc.n == 0) {
		buf_puts(reply, "453 4.2.0 You have no mail");
		goto out;
	}
	{
		const char *kv[] = {"client", client, "user", user, "domains", param, NULL};
		event_logkv(EV_ODMR_ATRN_ACCEPTED, kv,
			    "ATRN %s from %s (user %s): %u held messages; reversing the connection",
			    param, client, user, sc.n);
	}
	buf_puts(reply, "250 2.0.0 OK now reversing the connection");
	rc = 1;
out:
	strlist_free(&domains);
	return rc;
}

static void odmr_on_msg(struct smtpc *c, struct smtpc_msg *sm, void *arg)
{
	struct odmr_common_msg *m = sm->user;
	struct odmr_conn *cn = arg;

	if (!m->stored)
		odmr_common_store(&cn->peer, cn->h->q, cn->h->d, m, sm);
}

static void odmr_conn_free(struct odmr_conn *cn)
{
	for (struct odmr_conn **pp = &cn->h->conns; *pp; pp = &(*pp)->next)
		if (*pp == cn) {
			*pp = cn->next;
			break;
		}
	if (cn->c)
		smtpc_free(cn->c);
	odmr_common_batch_free(&cn->b);
	free(cn->label);
	strlist_free(&cn->domains);
	free(cn->client);
	free(cn->user);
	free(cn);
}

static void odmr_on_done(struct smtpc *c, const struct smtpc_session_result *r, void *arg)
{
	struct odmr_conn *cn = arg;
	struct buf doms = BUF_INIT;

	for (size_t i = 0; i < cn->b.nm; i++)
		if (!cn->b.m[i].stored && cn->b.jobs[i].attempted)
			odmr_common_store(&cn->peer, cn->h->q, cn->h->d, &cn->b.m[i],
					  &cn->b.jobs[i]);
		else if (!cn->b.m[i].stored)
			cn->peer.held += (unsigned)cn->b.m[i].nidx;
	for (size_t i = 0; i < cn->domains.n; i++)
		buf_printf(&doms, "%s%s", i ? "," : "", cn->domains.v[i]);
	{
		const char *kv[] = {"client",  cn->client,
				    "domains", buf_cstr(&doms),
				    "cause",   smtpc_cause_name(r->cause),
				    NULL};
		event_logkv(EV_ODMR_DELIVERY_DONE, kv,
			    "ODMR delivery of %s to %s (user %s) over: %u delivered, %u still "
			    "held, %u failed (%s%s%s)",
			    buf_cstr(&doms), cn->client, cn->user, cn->peer.ok, cn->peer.held,
			    cn->peer.failed, smtpc_cause_name(r->cause), *r->text ? ": " : "",
			    r->text);
	}
	buf_free(&doms);
	smtpc_free(c);
	cn->c = NULL;
	odmr_conn_free(cn);
}

/* smtp_server_set_odmr's take: the hub is now the client on bev. */
static void odmr_take(struct bufferevent *bev, const char *client, const char *user,
		      const char *param, void *arg)
{
	struct odmr_hub *h = arg;
	struct odmr_conn *cn = xcalloc(1, sizeof(*cn));
	struct odmr_scan sc = {h, &cn->domains, cn, 0};
	struct smtpc_options opt;

	cn->h = h;
	cn->client = xstrdup(client);
	cn->user = xstrdup(user);
	cn->label = xasprintf("ODMR, remote host %s", client);
	cn->peer = (struct odmr_common_peer){.key = "remote_mta",
					     .value = cn->client,
					     .label = cn->label,
					     .remote_mta = cn->client,
					     .tag = "odmr"};
	odmr_parse_domains(h->cfg, user, param, &cn->domains);
	cn->next = h->conns;
	h->conns = cn;
	queue_scan(h->q, odmr_scan_one, &sc);
	odmr_common_batch_jobs(&cn->b);
	memset(&opt, 0, sizeof(opt));
	opt.helo_name = h->cfg->hostname;
	opt.tls = SMTPC_TLS_NONE; /* the connection is what it is (TLS or not) */
	opt.max_messages = 0;
	outbound_timeouts(h->cfg, &opt.t);
	cn->c = smtpc_new(h->base, &opt, cn->b.jobs, cn->b.nm, odmr_on_done, cn);
	smtpc_set_msg_cb(cn->c, odmr_on_msg);
	if (smtpc_start_bev(cn->c, bev) < 0) {
		log_warnx("odmr: %s: cannot start the reversed session", client);
		odmr_conn_free(cn);
	}
}

/* Mail a site sent on the ODMR port after AUTH (data = direct) goes out. */
static void odmr_committed(const char *qid, int inbound, void *arg)
{
	struct odmr_hub *h = arg;

	if (h->d)
		delivery_kick(h->d, qid);
}

struct odmr_hub *odmr_hub_new(struct event_base *base, const struct config *cfg, struct queue *q,
			      struct delivery *d)
{
	struct odmr_hub *h;
	int ok = 0;

	if (cfg->odmr_listen.n == 0 && cfg->answer == NULL)
		return NULL;
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->cfg = cfg;
	h->q = q;
	h->d = d;
	h->srv = smtp_server_new(base, cfg, q, odmr_committed, h);
	smtp_server_set_odmr(h->srv, odmr_atrn, odmr_take, h);
	for (size_t i = 0; i < cfg->odmr_listen.n; i++)
		ok += smtp_server_listen(h->srv, cfg->odmr_listen.v[i]) == 0;
	if (cfg->odmr_listen.n && ok == 0) {
		odmr_hub_free(h);
		return NULL;
	}
	return h;
}

void odmr_hub_adopt(struct odmr_hub *h, struct bufferevent *bev, const char *peer)
{
	smtp_server_adopt(h->srv, bev, peer, 0, NULL, NULL);
}

void odmr_hub_free(struct odmr_hub *h)
{
	if (h == NULL)
		return;
	while (h->conns)
		odmr_conn_free(h->conns); /* unstored results: the mail stays held */
	smtp_server_free(h->srv);
	free(h);
}

/* ---------------------------------------------------------- branch side */

enum ob_key { OK_HOST, OK_DOMAINS, OK_AUTH, OK_TLS, OK_CA, OK_PIN, OK_COUNT };
static const char *const odmr_keys[OK_COUNT] = {"atrn_host", "atrn_domains", "atrn_auth",
						"atrn_tls",  "atrn_ca",	     "atrn_fingerprint"};

/* atrn_tls, atrn_ca, atrn_fingerprint: 0, or -1 with problem filled. */
static int odmr_config_tls(struct session_config *sc, int k, const char *value, struct buf *problem)
{
	FILE *f;

	if (k == OK_TLS) {
		if ((sc->atrn_tls = odmr_common_tls_policy(value)) >= 0)
			return 0;
		buf_printf(problem, "'%s' is not none, opportunistic or required", value);
		return -1;
	}
	if (k == OK_PIN) {
		if ((sc->atrn_fingerprint = tls_fingerprint_parse(value)) != NULL)
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

int odmr_config_line(struct session_config *sc, const char *key, const char *value,
		     struct buf *problem)
{
	int k;

	for (k = 0; k < OK_COUNT && strcmp(key, odmr_keys[k]) != 0; k++)
		;
	if (k == OK_COUNT)
		return 1;
	if (sc->atrn_set & (1u << k)) {
		buf_puts(problem, "set twice in [session]");
		return -1;
	}
	sc->atrn_set |= 1u << k;
	if (k >= OK_TLS)
		return odmr_config_tls(sc, k, value, problem);
	if (k == OK_DOMAINS) {
		strlist_split(&sc->atrn_domains, value);
		for (size_t i = 0; i < sc->atrn_domains.n; i++)
			if (!odmr_common_domain_ok(sc->atrn_domains.v[i],
						   strlen(sc->atrn_domains.v[i]))) {
				buf_printf(problem, "'%s' is not a domain", sc->atrn_domains.v[i]);
				return -1;
			}
		return 0;
	}
	if (k == OK_HOST && (strchr(value, ' ') || *value == '\0')) {
		buf_printf(problem, "'%s' is not host[:port]", value);
		return -1;
	}
	free(k == OK_HOST ? sc->atrn_host : sc->atrn_auth);
	*(k == OK_HOST ? &sc->atrn_host : &sc->atrn_auth) = xstrdup(value);
	return 0;
}

const char *odmr_config_problem(const struct session_config *sc)
{
	if (sc->atrn_domains.n == 0)
		return "retrieve = atrn needs atrn_domains (the domains to claim)";
	if (sc->atrn_auth == NULL)
		return "retrieve = atrn needs atrn_auth (a NAME of auth_file: RFC 2645 "
		       "requires AUTH)";
	return NULL;
}

void odmr_config_show(const struct session_config *sc, FILE *out)
{
	fprintf(out, "atrn_host =%s%s\natrn_domains =", sc->atrn_host ? " " : "",
		sc->atrn_host ? sc->atrn_host : "");
	for (size_t i = 0; i < sc->atrn_domains.n; i++)
		fprintf(out, "%s%s", i ? ", " : " ", sc->atrn_domains.v[i]);
	fprintf(out, "\natrn_auth =%s%s\n", sc->atrn_auth ? " " : "",
		sc->atrn_auth ? sc->atrn_auth : "");
	fprintf(out, "atrn_tls = %s\natrn_ca =%s%s\natrn_fingerprint =%s%s\n",
		odmr_common_tls_name(sc->atrn_tls), sc->atrn_ca ? " " : "",
		sc->atrn_ca ? sc->atrn_ca : "", sc->atrn_fingerprint ? " sha256:" : "",
		sc->atrn_fingerprint ? sc->atrn_fingerprint : "");
}

void odmr_config_free(struct session_config *sc)
{
	free(sc->atrn_host);
	free(sc->atrn_auth);
	free(sc->atrn_ca);
	free(sc->atrn_fingerprint);
	strlist_free(&sc->atrn_domains);
	sc->atrn_host = sc->atrn_auth = sc->atrn_ca = sc->atrn_fingerprint = NULL;
}

enum ob_state { OB_GREET, OB_EHLO, OB_STARTTLS, OB_TLS, OB_AUTH, OB_ATRN, OB_QUIT, OB_ADOPTED };

#define ODMR_B_DRAIN_MS 2000 /* at the end: how long a queued QUIT may take to leave */

struct odmr_branch {
	struct retrieval_ctx ctx;
	void (*done)(int ok, const char *text, void *arg);
	void *arg;
	char *host;
	int port;
	const struct auth_cred *cred;
	struct bufferevent *bev;
	int tls;
	enum ob_state state;
	struct buf reply;	      /* lines joined by '\n' */
	struct odmr_common_caps caps; /* EHLO offers */
	struct smtp_adopted *adopted;
	struct retrieve_conn *conn; /* resolving and connecting */
	struct event *ev_end;
	int end_ok;
	char *end_text;
	unsigned msgs0;
};

static void odmr_b_step(struct odmr_branch *b, const char *what, int code, const char *text)
{
	char c[8];
	const char *kv[] = {"host", b->host, "code", c, NULL};

	snprintf(c, sizeof(c), "%d", code);
	event_logkv(EV_RETRIEVE_ATRN, kv, "ATRN retrieval at %s port %d: %s%s%s", b->host, b->port,
		    what, text ? ": " : "", text ? text : "");
}

static void odmr_b_release(struct odmr_branch *b)
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

void odmr_branch_free(struct odmr_branch *b)
{
	if (b)
		odmr_b_release(b);
}

static void odmr_b_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct odmr_branch *b = arg;
	void (*done)(int, const char *, void *) = b->done;
	void *darg = b->arg;
	int ok = b->end_ok;
	char *text = b->end_text;

	b->end_text = NULL;
	odmr_b_release(b);
	done(ok, text, darg);
	free(text);
}

/* The last command (QUIT) left, or the connection is gone: end now. */
static void odmr_b_drained_cb(struct bufferevent *bev, void *arg)
{
	struct odmr_branch *b = arg;
	struct timeval now = {0, 0};

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		evtimer_add(b->ev_end, &now);
}

static void odmr_b_drain_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct odmr_branch *b = arg;
	struct timeval now = {0, 0};

	evtimer_add(b->ev_end, &now);
}

/* Ends the job from a timer, so done never runs inside a caller of ours.
 * bufferevent_free drops unsent output: a queued QUIT (plain or TLS) gets
 * up to ODMR_B_DRAIN_MS to leave first. */
static void odmr_b_end(struct odmr_branch *b, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void odmr_b_end(struct odmr_branch *b, int ok, const char *fmt, ...)
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
	b->ev_end = evtimer_new(b->ctx.base, odmr_b_end_cb, b);
	if (b->bev && evbuffer_get_length(bufferevent_get_output(b->bev)) > 0) {
		bufferevent_disable(b->bev, EV_READ);
		bufferevent_setwatermark(b->bev, EV_WRITE, 0, 0);
		bufferevent_setcb(b->bev, NULL, odmr_b_drained_cb, odmr_b_drain_event_cb, b);
		tv.tv_sec = ODMR_B_DRAIN_MS / 1000;
		tv.tv_usec = (ODMR_B_DRAIN_MS % 1000) * 1000;
	} else if (b->bev) {
		bufferevent_free(b->bev);
		b->bev = NULL;
	}
	evtimer_add(b->ev_end, &tv);
}

static void odmr_b_send(struct odmr_branch *b, enum ob_state next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void odmr_b_send(struct odmr_branch *b, enum ob_state next, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	odmr_common_vsend(b->bev, fmt, ap);
	va_end(ap);
	b->state = next;
}

static void odmr_b_cram(struct odmr_branch *b, const char *challenge64)
{
	char *enc = odmr_common_cram(b->cred, challenge64);

	if (enc)
		odmr_b_send(b, OB_AUTH, "%s", enc);
	else
		odmr_b_send(b, OB_QUIT, "*");
	free(enc);
}

static void odmr_b_auth(struct odmr_branch *b)
{
	char *enc;

	if (!b->tls && b->caps.cram) {
		odmr_b_send(b, OB_AUTH, "AUTH CRAM-MD5");
		return;
	}
	if (!b->caps.plain || !b->tls) {
		odmr_b_send(b, OB_QUIT, "QUIT");
		odmr_b_end(b, 0, "no usable AUTH at the hub (%s)",
			   b->tls ? "PLAIN not offered" : "no CRAM-MD5 and no TLS");
		return;
	}
	enc = odmr_common_plain(b->cred);
	odmr_b_send(b, OB_AUTH, "AUTH PLAIN %s", enc);
	free(enc);
}

/* atrn_tls = required and no TLS to be had: QUIT, nothing else sent. */
static void odmr_b_no_tls(struct odmr_branch *b, const char *why)
{
	odmr_b_step(b, "no TLS", 0, why);
	odmr_b_send(b, OB_QUIT, "QUIT");
	odmr_b_end(b, 0, "atrn_tls = required, but %s; nothing sent (no AUTH)", why);
}

static void odmr_b_read_cb(struct bufferevent *bev, void *arg);
static void odmr_b_event_cb(struct bufferevent *bev, short what, void *arg);

/* 220 to STARTTLS: the handshake; EHLO follows once the hub's certificate
 * passed odmr_common_tls_check (odmr_b_event_cb). */
static void odmr_b_tls(struct odmr_branch *b)
{
	evutil_socket_t fd = bufferevent_getfd(b->bev);
	struct buf why = BUF_INIT;
	struct bufferevent *tb = NULL;
	SSL *ssl;

	if (evbuffer_get_length(bufferevent_get_input(b->bev)) > 0)
		return odmr_b_end(b, 0, "data after the hub's STARTTLS reply (injection?)");
	if ((ssl = odmr_common_tls_ssl(b->ctx.sc, b->host, &why)) != NULL)
		tb = bufferevent_openssl_socket_new(
		    b->ctx.base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) { /* libevent freed ssl (BEV_OPT_CLOSE_ON_FREE) */
		odmr_b_end(b, 0, "cannot start TLS: %s", why.len ? buf_cstr(&why) : "libevent");
		buf_free(&why);
		return;
	}
	bufferevent_setfd(b->bev, -1);
	bufferevent_free(b->bev);
	b->bev = tb;
	b->tls = 1;
	b->state = OB_TLS;
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bufferevent_setcb(tb, odmr_b_read_cb, NULL, odmr_b_event_cb, b);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}

/* The handshake is done: check the certificate before anything is sent. */
static void odmr_b_tls_up(struct odmr_branch *b)
{
	SSL *ssl = bufferevent_openssl_get_ssl(b->bev);
	struct buf why = BUF_INIT;

	if (odmr_common_tls_check(b->ctx.sc, ssl, &why) < 0) {
		odmr_b_step(b, "TLS refused", 0, buf_cstr(&why));
		odmr_b_end(b, 0, "%s; nothing sent (no AUTH)", buf_cstr(&why));
	} else {
		odmr_b_step(b, "TLS started", 0, buf_cstr(&why));
		odmr_b_send(b, OB_EHLO, "EHLO %s", b->ctx.cfg->hostname);
	}
	buf_free(&why);
}

static void odmr_b_on_close(int quit, void *arg)
{
	struct odmr_branch *b = arg;
	unsigned got = b->ctx.msgs_in ? *b->ctx.msgs_in - b->msgs0 : 0;

	b->adopted = NULL;
	odmr_b_step(b,
		    quit ? "the hub sent QUIT: retrieval complete"
			 : "the connection ended before the hub's QUIT",
		    quit ? 221 : 0, NULL);
	if (quit)
		odmr_b_end(b, 1, "ATRN at %s: %u messages received, hub sent QUIT", b->host, got);
	else
		odmr_b_end(b, 0, "ATRN at %s: connection lost after %u messages", b->host, got);
}

/* 250 to ATRN: this end is now the SMTP server on the connection. */
static void odmr_b_reverse(struct odmr_branch *b)
{
	struct bufferevent *bev = b->bev;

	b->bev = NULL;
	b->state = OB_ADOPTED;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	b->adopted = smtp_server_adopt(b->ctx.smtp, bev, b->host, b->tls, odmr_b_on_close, b);
}

static void odmr_b_atrn(struct odmr_branch *b)
{
	char *cmd = odmr_common_atrn_cmd(&b->ctx.sc->atrn_domains);

	odmr_b_send(b, OB_ATRN, "%s", cmd);
	free(cmd);
}

/* EHLO answered: STARTTLS as atrn_tls says, else AUTH. */
static void odmr_b_ehlo(struct odmr_branch *b, const char *text)
{
	int policy = b->ctx.sc->atrn_tls;

	odmr_common_caps(text, &b->caps);
	if (!b->tls && policy != ODMR_TLS_NONE && b->caps.starttls)
		return odmr_b_send(b, OB_STARTTLS, "STARTTLS");
	if (!b->tls && policy == ODMR_TLS_REQUIRED)
		return odmr_b_no_tls(b, "the hub does not offer STARTTLS");
	odmr_b_auth(b);
}

static void odmr_b_reply(struct odmr_branch *b, int code)
{
	const char *text = buf_cstr(&b->reply);

	switch (b->state) {
	case OB_GREET:
		if (code != 220)
			return odmr_b_end(b, 0, "hub greeting refused: %d %s", code, text);
		return odmr_b_send(b, OB_EHLO, "EHLO %s", b->ctx.cfg->hostname);
	case OB_EHLO:
		if (code != 250)
			return odmr_b_end(b, 0, "EHLO refused: %d %s", code, text);
		return odmr_b_ehlo(b, text);
	case OB_STARTTLS:
		if (code == 220)
			return odmr_b_tls(b);
		if (b->ctx.sc->atrn_tls == ODMR_TLS_REQUIRED)
			return odmr_b_no_tls(b, "the hub refused STARTTLS");
		return odmr_b_auth(b);
	case OB_AUTH:
		if (code == 334)
			return odmr_b_cram(b, text);
		odmr_b_step(b, code == 235 ? "authenticated" : "authentication refused", code,
			    text);
		if (code != 235) {
			odmr_b_send(b, OB_QUIT, "QUIT");
			return odmr_b_end(b, 0, "AUTH as %s refused: %d %s", b->cred->user, code,
					  text);
		}
		return odmr_b_atrn(b);
	case OB_ATRN:
		odmr_b_step(b, code == 250 ? "ATRN accepted, roles reversed" : "ATRN reply", code,
			    text);
		if (code == 250)
			return odmr_b_reverse(b);
		odmr_b_send(b, OB_QUIT, "QUIT");
		if (code == 453)
			return odmr_b_end(b, 1, "ATRN at %s: no mail waiting (%d %s)", b->host,
					  code, text);
		return odmr_b_end(b, 0, "ATRN at %s refused: %d %s", b->host, code, text);
	default:
		return;
	}
}

static void odmr_b_read_cb(struct bufferevent *bev, void *arg)
{
	struct odmr_branch *b = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while (b->bev == bev && b->state != OB_ADOPTED && b->state != OB_TLS && !b->ev_end &&
	       (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		int code = odmr_common_reply_line(&b->reply, SIZE_MAX, line, n);

		free(line);
		if (code < 0)
			return odmr_b_end(b, 0, "malformed reply from the hub");
		if (code == 0)
			continue;
		odmr_b_reply(b, code);
		buf_reset(&b->reply);
	}
}

static void odmr_b_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct odmr_branch *b = arg;
	struct buf why = BUF_INIT;

	if (what & BEV_EVENT_CONNECTED) {
		if (b->state == OB_TLS)
			odmr_b_tls_up(b);
		return;
	}
	if (b->state == OB_TLS && !(what & BEV_EVENT_TIMEOUT)) {
		odmr_common_tls_error(bev, &why);
		odmr_b_step(b, "TLS failed", 0, buf_cstr(&why));
		odmr_b_end(b, 0, "%s; nothing sent (no AUTH)", buf_cstr(&why));
		buf_free(&why);
		return;
	}
	odmr_b_end(b, 0, "connection to %s port %d %s", b->host, b->port,
		   what & BEV_EVENT_TIMEOUT ? "timed out"
		   : what & BEV_EVENT_EOF   ? "closed by the hub"
					    : "failed");
}

/* atrn_host, else the link route's smarthost; port 366 unless given. */
static void odmr_b_target(struct odmr_branch *b)
{
	const char *h = b->ctx.sc->atrn_host ? b->ctx.sc->atrn_host : b->ctx.host;

	b->port = ODMR_PORT;
	b->host = h ? odmr_common_host(h, &b->port) : NULL;
}

static void odmr_b_connected(struct bufferevent *bev, const char *why, void *arg)
{
	struct odmr_branch *b = arg;

	b->conn = NULL;
	if (bev == NULL)
		return odmr_b_end(b, 0, "%s", why);
	b->bev = bev;
	retrieve_conn_own(bev, odmr_b_read_cb, odmr_b_event_cb, b, b->ctx.sc->retrieve_timeout);
	odmr_b_step(b, "connected", 0, NULL);
}

struct odmr_branch *odmr_branch_start(const struct retrieval_ctx *ctx,
				      void (*done)(int ok, const char *text, void *arg), void *arg,
				      struct buf *why)
{
	struct odmr_branch *b = xcalloc(1, sizeof(*b));

	b->ctx = *ctx;
	b->done = done;
	b->arg = arg;
	b->msgs0 = ctx->msgs_in ? *ctx->msgs_in : 0;
	odmr_b_target(b);
	b->cred = ctx->sc->atrn_auth ? routes_auth(ctx->cfg->routes, ctx->sc->atrn_auth) : NULL;
	if (b->host == NULL || b->cred == NULL || ctx->smtp == NULL) {
		buf_printf(why, "%s",
			   b->host == NULL   ? "no atrn_host and no smarthost for the link"
			   : b->cred == NULL ? "atrn_auth names no credentials of auth_file"
					     : "no SMTP server to receive the mail");
		goto fail;
	}
	b->state = OB_GREET;
	b->conn = retrieve_connect(ctx->base, ctx->cfg, b->host, b->port, ctx->sc->retrieve_timeout,
				   odmr_b_connected, b, why);
	if (b->conn == NULL)
		goto fail;
	return b;
fail:
	odmr_b_release(b);
	return NULL;
}
