/* On-Demand Mail Relay (RFC 2645), the hub's side: an SMTP server on
 * odmr_listen in ODMR mode (smtp_server_set_odmr) answers ATRN here; on 250
 * the SMTP client engine runs on the same connection with the held mail of
 * the claimed domains (the branch's side is dialup/atrn.c). Invariant: a
 * held recipient is marked delivered only on the site's 2xx for it; the rest
 * stays held. */
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

#include "deliver/delivery.h"
#include "mail/policy.h"
#include "mail/event.h"
#include "hub/hub.h"
#include "hub/odmr.h"
#include "deliver/held.h"
#include "deliver/outbound.h"
#include "mail/routes.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "queue/qindex.h"
#include "smtp/dsn.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_server.h"
#include "smtp/tls.h"

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
		if (!policy_domain_ok(l.v[i], strlen(l.v[i]))) {
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

struct odmr_conn {
	struct odmr_hub *h;
	char *client, *user;
	struct strlist domains;
	struct held_batch b; /* the held mail carried */
	struct held_peer peer;
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
	       policy_held(sc->h->cfg, at + 1);
}

static int odmr_scan_one(const char *id, void *arg)
{
	struct odmr_scan *sc = arg;

	sc->n += (unsigned)held_batch_load(sc->cn ? &sc->cn->b : NULL, sc->h->q, id, sc->cn != NULL,
					   odmr_rcpt_claimed, sc);
	return 0;
}

static int odmr_collect(const char *id, void *arg)
{
	strlist_add(arg, id);
	return 0;
}

static int odmr_id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs odmr_scan_one over the messages the index holds for sc's domains,
 * each once and oldest first, without looking at any other message. */
static void odmr_scan(struct odmr_scan *sc)
{
	struct qindex *ix = queue_index(sc->h->q);
	struct strlist ids = {0};

	for (size_t i = 0; i < sc->domains->n; i++)
		qindex_held_for(ix, sc->domains->v[i], 0, odmr_collect, &ids);
	if (ids.n > 1)
		qsort(ids.v, ids.n, sizeof(*ids.v), odmr_id_cmp);
	for (size_t i = 0; i < ids.n; i++)
		if (i == 0 || strcmp(ids.v[i], ids.v[i - 1]) != 0)
			odmr_scan_one(ids.v[i], sc);
	strlist_free(&ids);
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

/* The domains of param the user may claim now, or -1 with the refusal. */
static int odmr_claim(struct odmr_hub *h, const char *client, const char *user, const char *param,
		      struct strlist *domains, struct buf *reply)
{
	if (odmr_parse_domains(h->cfg, user, param, domains) < 0) {
		buf_puts(reply, "501 5.5.4 Syntax: ATRN domain[,domain...]");
		return -1;
	}
	for (size_t i = 0; i < domains->n && reply->len == 0; i++)
		if (!policy_odmr_user_owns(h->cfg, user, domains->v[i]))
			buf_printf(reply, "450 4.7.1 ATRN request refused: %s may not claim %s",
				   user, domains->v[i]);
	if (reply->len == 0 && domains->n == 0)
		buf_printf(reply, "450 4.7.1 ATRN request refused: no domains for %s", user);
	if (reply->len) {
		odmr_refused(client, user, param, buf_cstr(reply));
		return -1;
	}
	if (odmr_busy(h, domains)) {
		buf_puts(reply, "451 4.4.0 Unable to process ATRN request now: a delivery for "
				"these domains is in progress");
		return -1;
	}
	return 0;
}

/* smtp_server_set_odmr's atrn: 1 with "250" when the connection reverses. */
static int odmr_atrn(const char *client, const char *user, const char *param, struct buf *reply,
		     void *arg)
{
	struct odmr_hub *h = arg;
	struct strlist domains = {0};
	struct odmr_scan sc = {h, &domains, NULL, 0};
	int rc = 0;

	if (odmr_claim(h, client, user, param, &domains, reply) < 0)
		goto out;
	odmr_scan(&sc);
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
	struct held_msg *m = sm->user;
	struct odmr_conn *cn = arg;

	if (!m->stored)
		held_store(&cn->peer, cn->h->q, cn->h->d, m, sm);
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
	held_batch_free(&cn->b);
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
			held_store(&cn->peer, cn->h->q, cn->h->d, &cn->b.m[i], &cn->b.jobs[i]);
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

/* The held mail of param's domains, loaded, in an engine not yet started. */
static struct odmr_conn *odmr_conn_new(struct odmr_hub *h, const char *client, const char *user,
				       const char *param)
{
	struct odmr_conn *cn = xcalloc(1, sizeof(*cn));
	struct odmr_scan sc = {h, &cn->domains, cn, 0};
	struct smtpc_options opt;

	cn->h = h;
	cn->client = xstrdup(client);
	cn->user = xstrdup(user);
	cn->label = xasprintf("ODMR, remote host %s", client);
	cn->peer = (struct held_peer){.key = "remote_mta",
				      .value = cn->client,
				      .label = cn->label,
				      .remote_mta = cn->client,
				      .tag = "odmr"};
	odmr_parse_domains(h->cfg, user, param, &cn->domains);
	cn->next = h->conns;
	h->conns = cn;
	odmr_scan(&sc);
	held_batch_jobs(&cn->b);
	memset(&opt, 0, sizeof(opt));
	opt.helo_name = h->cfg->hostname;
	opt.tls = SMTPC_TLS_NONE; /* the connection is what it is (TLS or not) */
	opt.max_messages = 0;
	outbound_timeouts(h->cfg, &opt.t);
	opt.batch = h->cfg->batch_transfer;
	opt.batch_chunk = (size_t)h->cfg->batch_checkpoint_size;
	cn->c = smtpc_new(h->base, &opt, cn->b.jobs, cn->b.nm, odmr_on_done, cn);
	smtpc_set_msg_cb(cn->c, odmr_on_msg);
	return cn;
}

/* smtp_server_set_odmr's take: the hub is now the client on bev. */
static void odmr_take(struct bufferevent *bev, const char *client, const char *user,
		      const char *param, void *arg)
{
	struct odmr_conn *cn = odmr_conn_new(arg, client, user, param);

	if (smtpc_start_bev(cn->c, bev) < 0) {
		log_warnx("odmr: %s: cannot start the reversed session", client);
		odmr_conn_free(cn);
	}
}

/* smtp_server_set_duplex's duplex: ATRN's checks, then the held mail (maybe
 * none) goes in a batch while the site's comes in (docs/batch-protocol.md 12). */
static struct smtpc *odmr_duplex(const char *client, const char *user, const char *param,
				 struct buf *reply, void *arg)
{
	struct odmr_hub *h = arg;
	struct strlist domains = {0};
	struct odmr_conn *cn;
	int rc = odmr_claim(h, client, user, param, &domains, reply);

	strlist_free(&domains);
	if (rc < 0)
		return NULL;
	cn = odmr_conn_new(h, client, user, param);
	{
		char n[16];
		const char *kv[] = {"client", client, "user", user, "domains", param, NULL};

		snprintf(n, sizeof(n), "%zu", cn->b.nm);
		event_logkv(EV_ODMR_ATRN_ACCEPTED, kv,
			    "XDMBATCH DUPLEX %s from %s (user %s): %s held messages go while the "
			    "site's mail comes in",
			    param, client, user, n);
	}
	return cn->c;
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
	if (cfg->batch_transfer && cfg->batch_duplex)
		smtp_server_set_duplex(h->srv, odmr_duplex);
	for (size_t i = 0; i < cfg->odmr_listen.n; i++)
		ok += smtp_server_listen(h->srv, cfg->odmr_listen.v[i]) == 0;
	if (cfg->odmr_listen.n && ok == 0) {
		odmr_hub_free(h);
		return NULL;
	}
	return h;
}

int odmr_hub_reload_tls(struct odmr_hub *h, struct buf *err)
{
	return h ? smtp_server_reload_tls(h->srv, err) : 0;
}

void odmr_hub_adopt(struct odmr_hub *h, struct bufferevent *bev, const char *peer)
{
	/* an answered call: the hub's own branches dial it (docs/batch-protocol.md 1) */
	smtp_server_adopt(h->srv, bev, peer, SMTP_ADOPT_DIALMAIL, NULL, NULL);
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
