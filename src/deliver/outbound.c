/* Outbound delivery: groups due remote recipients by destination, runs one
 * SMTP client session per connection (next MX or address on connection
 * failures and whole-transaction 4xx), and stores each recipient's outcome.
 * Invariant: a message is on at most one connection at a time, and its state
 * is reloaded and written when that connection is over: what the server did
 * not confirm stays pending (duplicates are possible, loss never). */
#include <ctype.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "deliver/dedup.h"
#include "mail/policy.h"
#include "mail/event.h"
#include "deliver/mx.h"
#include "deliver/outbound.h"
#include "mail/routes.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"
#include "queue/retry.h"
#include "smtp/smtp_client.h"
#include "smtp/tls.h"

enum ob_kind { OB_SEND, OB_LOCAL, OB_HOLD, OB_WAIT, OB_NO_ROUTE };

struct ob_wait {
	char qid[QUEUE_ID_MAX];
	int force;
	uint64_t size;
};

/* A destination: a smarthost route, or an MX route and one domain. */
struct ob_dest {
	const struct route *route;
	char *domain; /* MX routes only */
	char *name;   /* for events: "mail.isp.example:587" or "example.org (MX)" */
	struct ob_wait *wait;
	size_t nwait;
	int nconns;
	int no_chunking;  /* its server did not offer CHUNKING last time */
	long long rtt_us; /* its last greeting's delay: a round trip; 0 unknown */
	struct ob_dest *next;
};

struct ob_link {
	char *name;
	int up;
	int idle_pending; /* on_idle is owed once the link's work is done */
	void (*on_idle)(const char *name, void *arg);
	void *arg;
	int waiting; /* due recipients seen while the link was down */
	unsigned msgs_out;
	unsigned long long bytes_out;
	long bps; /* the link's bandwidth (bit/s) while up; 0 unknown */
	struct ob_link *next;
};

/* An ETRN release (hub): held mail of a domain goes to the site. Kept until
 * outbound_free, since destinations point at its route. */
struct ob_release {
	char *domain;
	int sub;	    /* subdomains too ("ETRN @domain") */
	struct route route; /* a smarthost route to the site's address */
	int active;
	int passed; /* a full pass has offered its mail */
	struct ob_release *next;
};

struct ob_res {
	int status;	/* Q_OK, Q_TEMPFAIL, Q_PERMFAIL */
	int final;	/* no other host will be tried for it */
	char *reply;	/* server reply or our reason */
	char *mta;	/* host that gave it, or NULL */
	int dsn_passed; /* the server took NOTIFY/ORCPT: success is its to report */
	int lmtp;	/* it came from an LMTP server: a final delivery */
	int dup;	/* not sent: delivered to the mailbox server before (dedup) */
};

struct ob_msg {
	struct q_env env;
	struct buf content;
	size_t *idx; /* env->rcpt indexes carried */
	size_t nidx;
	struct ob_res *res; /* per idx */
};

/* One smtpc message job: which carried recipients it sends. */
struct ob_job {
	struct ob_msg *m;
	size_t *env_idx;
	size_t *res_idx;
	size_t n;
};

struct ob_conn {
	struct outbound *o;
	struct ob_dest *dest;
	struct ob_msg *m;
	size_t nm;
	struct mx_query *dns;
	struct strlist addr, host; /* targets in order */
	size_t cur;
	struct smtpc *c;
	struct smtpc_msg *jobs;
	struct ob_job *oj;
	size_t njobs;
	struct event *ev_start; /* unix-socket LMTP: starts without DNS */
	struct ob_conn *next;
};

struct outbound {
	struct event_base *base;
	const struct config *cfg;
	struct queue *q;
	struct mx *mx;
	struct retry_policy policy;
	enum transfer_mode mode;
	void (*kick)(const char *qid, void *arg);
	void *kick_arg;
	char *postmaster; /* qualified */
	struct ob_dest *dests;
	struct ob_conn *conns;
	struct ob_link *links;
	int nconns;
	struct strlist inflight; /* qids on a connection */
	struct strlist noroute;	 /* qids whose "no route" event was written */
	struct strlist warned;	 /* "qid rcpt" that got a delay warning */
	struct event *ev_idle;
	int pass_scheduled;
	int pass_full;
	int stopping;
	struct ob_release *releases;
	struct dedup *dedup; /* hand-off routes (lmtp, smtp) of local domains; may be NULL */
};

static void ob_start_all(struct outbound *o);
static void ob_release_check(struct outbound *o);
static void ob_try(struct ob_conn *cn);
static void ob_event_rcpt(int id, const struct q_env *env, const char *rcpt, const char *reply,
			  const char *mta, const char *fmt_tail);
static void ob_set_reply_text(struct q_rcpt *r, const char *text);
static void ob_bounced(const struct q_env *env, const struct q_rcpt *r, const char *reply,
		       const char *mta);

static char *ob_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *d = xstrdup(at ? at + 1 : "");

	for (char *p = d; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

static struct ob_link *ob_link(struct outbound *o, const char *name, int create)
{
	struct ob_link *l;

	for (l = o->links; l; l = l->next)
		if (strcmp(l->name, name) == 0)
			return l;
	if (!create)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->name = xstrdup(name);
	l->next = o->links;
	o->links = l;
	return l;
}

/* What happens to remote address addr now; *rt and *domain (caller frees)
 * are set for OB_SEND and OB_WAIT. */
/* The active release that covers domain d, or NULL. */
static struct ob_release *ob_release_for(struct outbound *o, const char *d)
{
	for (struct ob_release *rel = o->releases; rel; rel = rel->next) {
		size_t n = strlen(d), k = strlen(rel->domain);
		if (rel->active &&
		    (strcmp(d, rel->domain) == 0 || (rel->sub && n > k + 1 && d[n - k - 1] == '.' &&
						     strcmp(d + n - k, rel->domain) == 0)))
			return rel;
	}
	return NULL;
}

static enum ob_kind ob_classify(struct outbound *o, const char *addr, const struct route **rt,
				char **domain)
{
	char *d = ob_domain(addr);
	const struct route *r = routes_lookup(o->cfg->routes, d);
	struct ob_link *l;
	struct ob_release *rel;
	enum ob_kind k = OB_SEND;

	/* Held mail (hold_domains or a hold route) leaves only when released. */
	if (policy_hold_domain(o->cfg, d) || (r && r->type == ROUTE_HOLD)) {
		rel = ob_release_for(o, d);
		k = rel ? OB_SEND : OB_HOLD;
		r = rel ? &rel->route : r;
	} else if (r == NULL)
		k = OB_NO_ROUTE;
	else if (r->type == ROUTE_LOCAL)
		k = OB_LOCAL;
	else if (o->mode == TRANSFER_INBOUND_ONLY)
		k = OB_WAIT;
	else if (r->via && ((l = ob_link(o, r->via, 0)) == NULL || !l->up))
		k = OB_WAIT;
	*rt = r;
	if (domain && (k == OB_SEND || k == OB_WAIT))
		*domain = d;
	else
		free(d);
	return k;
}

int outbound_mailbox_route(struct outbound *o, const char *addr)
{
	char *d = ob_domain(addr);
	const struct route *r = routes_lookup(o->cfg->routes, d);
	int local = config_is_local_domain(o->cfg, d);

	free(d);
	return local && r && strcmp(r->domain, "*") != 0 &&
	       (r->type == ROUTE_LMTP || r->type == ROUTE_SMTP);
}

int outbound_local_route(struct outbound *o, const char *addr)
{
	const struct route *r;

	return ob_classify(o, addr, &r, NULL) == OB_LOCAL;
}

static int ob_peer_has(const struct outbound *o, const char *name);

static int ob_dest_no_chunking(const struct outbound *o, const char *name)
{
	char *f = xasprintf("%s.nochunking", name);
	int yes = ob_peer_has(o, f);

	free(f);
	return yes;
}

static struct ob_dest *ob_dest_get(struct outbound *o, const struct route *r, const char *domain)
{
	struct ob_dest *d;

	if (r->type != ROUTE_MX)
		domain = NULL;
	for (d = o->dests; d; d = d->next)
		if (d->route == r && (domain == NULL || strcmp(d->domain, domain) == 0))
			return d;
	d = xcalloc(1, sizeof(*d));
	d->route = r;
	d->domain = domain ? xstrdup(domain) : NULL;
	if (domain)
		d->name = xasprintf("%s (MX)", domain);
	else if (r->path)
		d->name = xasprintf("unix:%s", r->path);
	else
		d->name = xasprintf(strchr(r->host, ':') ? "[%s]:%d" : "%s:%d", r->host, r->port);
	d->no_chunking = ob_dest_no_chunking(o, d->name);
	d->next = o->dests;
	o->dests = d;
	return d;
}

static void ob_dest_add(struct ob_dest *d, const char *qid, int force, uint64_t size)
{
	for (size_t i = 0; i < d->nwait; i++)
		if (strcmp(d->wait[i].qid, qid) == 0) {
			d->wait[i].force |= force;
			return;
		}
	d->wait = xrealloc(d->wait, (d->nwait + 1) * sizeof(*d->wait));
	snprintf(d->wait[d->nwait].qid, QUEUE_ID_MAX, "%s", qid);
	d->wait[d->nwait].size = size;
	d->wait[d->nwait++].force = force;
}

static void ob_dest_drop(struct ob_dest *d, size_t i)
{
	memmove(&d->wait[i], &d->wait[i + 1], (d->nwait - i - 1) * sizeof(*d->wait));
	d->nwait--;
}

int outbound_offer(struct outbound *o, const struct q_env *env, size_t i, int force)
{
	const struct route *r = NULL;
	char *domain = NULL;
	struct ob_link *l;
	int taken = 0;

	switch (ob_classify(o, env->rcpt[i].addr, &r, &domain)) {
	case OB_HOLD: /* not taken: it expires like mail that cannot go */
		break;
	case OB_LOCAL:
		taken = 1;
		break;
	case OB_NO_ROUTE:
		if (strlist_has(&o->noroute, env->id))
			break;
		strlist_add(&o->noroute, env->id);
		domain = ob_domain(env->rcpt[i].addr);
		{
			const char *kvd[] = {"qid", env->id, "domain", domain, NULL};
			event_logkv(EV_NO_ROUTE, kvd,
				    "Message %s: no route for domain %s (no [routes] entry and no "
				    "'*' default); it stays queued",
				    env->id, domain);
		}
		break;
	case OB_WAIT:
		if (r->via)
			ob_link(o, r->via, 1)->waiting++;
		break;
	case OB_SEND:
		/* A release sends held mail whatever its retry time. */
		force |= ob_release_for(o, domain) != NULL;
		ob_dest_add(ob_dest_get(o, r, domain), env->id, force, env->size);
		if (r->via && (l = ob_link(o, r->via, 0)) != NULL)
			l->idle_pending = 1;
		taken = 1;
		break;
	}
	free(domain);
	return taken;
}

/* ---------------------------------------------------------------- DSNs */

/* The envelope's recipient addr (for its NOTIFY and ORCPT), or NULL. */
static const struct q_rcpt *ob_env_rcpt(const struct q_env *env, const char *addr)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (strcmp(env->rcpt[i].addr, addr) == 0)
			return &env->rcpt[i];
	return NULL;
}

int outbound_dsn(struct outbound *o, const struct q_env *env, const struct buf *content,
		 const struct dsn_rcpt *rc, size_t n)
{
	struct dsn_rcpt *due = xcalloc(n + 1, sizeof(*due));
	struct buf out = BUF_INIT;
	struct q_env e;
	const char *to = NULL;
	size_t nd = 0;
	int rc_commit = Q_OK;

	for (size_t i = 0; i < n; i++) {
		const char *t = dsn_return_to(env->sender, rc[i].addr, rc[i].action, o->postmaster);
		const struct q_rcpt *qr = ob_env_rcpt(env, rc[i].addr);
		unsigned notify = qr ? qr->notify : 0;

		if (t && dsn_due(env->sender, rc[i].addr, notify, rc[i].action, o->postmaster)) {
			to = t;
			due[nd] = rc[i];
			if (due[nd].orcpt == NULL && qr)
				due[nd].orcpt = qr->orcpt;
			nd++;
		} else if (t == NULL)
			log_info("outbound: no report about %s of %s (a bounce of a bounce)",
				 rc[i].addr, env->id);
		else
			log_info("outbound: no %s report about %s of %s (NOTIFY)",
				 dsn_action_name(rc[i].action), rc[i].addr, env->id);
	}
	memset(&e, 0, sizeof(e));
	if (nd > 0) {
		struct dsn_report r = {.reporting_mta = o->cfg->hostname,
				       .to = to,
				       .sender = env->sender,
				       .qid = env->id,
				       .envid = env->envid,
				       .ret_full = env->ret == Q_RET_FULL,
				       .arrival = env->created,
				       .now = clock_now(),
				       .content = content->data ? content->data : "",
				       .content_len = content->len,
				       .rcpt = due,
				       .nrcpt = nd};
		struct iovec iov;

		dsn_build(&r, &out);
		iov.iov_base = out.data;
		iov.iov_len = out.len;
		e.created = clock_now();
		e.sender = xstrdup("");
		e.client = xstrdup("local");
		e.size = out.len;
		q_env_add_rcpt(&e, to);
		rc_commit = queue_commit(o->q, &e, &iov, 1);
		if (rc_commit == Q_OK) {
			const char *kv[] = {"qid", env->id, "dsn_qid", e.id, NULL};
			event_logkv(EV_DSN_QUEUED, kv,
				    "Delivery status notification (%s) about message %s queued for "
				    "%s as %s",
				    dsn_action_name(due[0].action), env->id, to, e.id);
			track(TRK_RECEIVED, e.id, NULL, "", to, "DSN");
			if (o->kick)
				o->kick(e.id, o->kick_arg);
		} else {
			event_log(EV_QUEUE_WRITE_FAILED,
				  "Cannot queue the delivery status notification about message %s",
				  env->id);
			rc_commit = Q_TEMPFAIL;
		}
	}
	q_env_free(&e);
	buf_free(&out);
	free(due);
	return rc_commit;
}

/* Why a recipient that cannot go now waits, for its bounce. */
static char *ob_wait_reason(struct outbound *o, const struct q_rcpt *r)
{
	const struct route *rt = NULL;
	char *domain = NULL, *why;
	enum ob_kind k = ob_classify(o, r->addr, &rt, &domain);

	if (k == OB_HOLD)
		why = xstrdup("held for its site, which did not ask for it with ETRN");
	else if (k == OB_NO_ROUTE)
		why = xstrdup("no route for the domain");
	else if (rt && rt->via && o->mode != TRANSFER_INBOUND_ONLY)
		why = xasprintf("link %s was not up", rt->via);
	else
		why = xstrdup("outbound delivery is off (transfer_mode inbound-only)");
	free(domain);
	if (r->last_reply) {
		char *both = xasprintf("%s; last reply: %s", why, r->last_reply);
		free(why);
		why = both;
	}
	return why;
}

int outbound_expire_waiting(struct outbound *o, struct q_env *env, size_t i)
{
	struct q_rcpt *r = &env->rcpt[i];
	time_t now = clock_now();
	int shortest = o->policy.lifetime[0];
	struct q_env full;
	struct buf content = BUF_INIT;
	struct dsn_rcpt rc;
	char *why, *reply;

	for (int p = 1; p < 3; p++)
		shortest = o->policy.lifetime[p] < shortest ? o->policy.lifetime[p] : shortest;
	if (now < env->created + shortest)
		return 0; /* no priority can have expired: the content is not needed */
	memset(&full, 0, sizeof(full));
	if (queue_load(o->q, env->id, &full, &content) != Q_OK ||
	    !retry_expired(&o->policy, env->created,
			   retry_priority_of(content.data ? content.data : "", content.len), now)) {
		q_env_free(&full);
		buf_free(&content);
		return 0;
	}
	why = ob_wait_reason(o, r);
	reply = xasprintf("4.4.7 message expired after %ld s in the queue (%s)",
			  (long)(now - env->created), why);
	r->state = RCPT_FAILED;
	r->attempts++;
	ob_set_reply_text(r, reply);
	ob_bounced(env, r, reply, NULL);
	memset(&rc, 0, sizeof(rc));
	rc.addr = r->addr;
	rc.action = DSN_ACTION_FAILED;
	rc.diagnostic = reply;
	rc.last_attempt = now;
	outbound_dsn(o, env, &content, &rc, 1);
	free(why);
	free(reply);
	q_env_free(&full);
	buf_free(&content);
	return 1;
}

/* ------------------------------------------------------- connections */

static void ob_res_set(struct ob_res *r, int status, const char *reply, const char *mta, int final)
{
	char *nr = xstrdup(reply && *reply ? reply : "(no reply)");
	char *nm = mta ? xstrdup(mta) : NULL; /* reply and mta may be r's own */

	r->status = status;
	r->final = final;
	free(r->reply);
	r->reply = nr;
	free(r->mta);
	r->mta = nm;
}

static void ob_jobs_free(struct ob_conn *cn)
{
	for (size_t i = 0; i < cn->njobs; i++) {
		free(cn->oj[i].env_idx);
		free(cn->oj[i].res_idx);
	}
	free(cn->oj);
	free(cn->jobs);
	cn->oj = NULL;
	cn->jobs = NULL;
	cn->njobs = 0;
}

/* Jobs for every message with recipients still open (not final). */
static size_t ob_jobs_build(struct ob_conn *cn)
{
	cn->jobs = xcalloc(cn->nm + 1, sizeof(*cn->jobs));
	cn->oj = xcalloc(cn->nm + 1, sizeof(*cn->oj));
	cn->njobs = 0;
	for (size_t i = 0; i < cn->nm; i++) {
		struct ob_msg *m = &cn->m[i];
		struct ob_job *j = &cn->oj[cn->njobs];

		j->env_idx = xcalloc(m->nidx + 1, sizeof(size_t));
		j->res_idx = xcalloc(m->nidx + 1, sizeof(size_t));
		for (size_t k = 0; k < m->nidx; k++)
			if (!m->res[k].final) {
				j->env_idx[j->n] = m->idx[k];
				j->res_idx[j->n++] = k;
			}
		if (j->n == 0) {
			free(j->env_idx);
			free(j->res_idx);
			memset(j, 0, sizeof(*j));
			continue;
		}
		j->m = m;
		cn->jobs[cn->njobs].env = &m->env;
		cn->jobs[cn->njobs].content = &m->content;
		cn->jobs[cn->njobs].rcpt_idx = j->env_idx;
		cn->jobs[cn->njobs].nrcpt_idx = j->n;
		cn->jobs[cn->njobs].user = j;
		cn->njobs++;
	}
	return cn->njobs;
}

/* Takes the definitive results of one message job (2xx after the data, 5xx). */
static void ob_take_final(struct ob_conn *cn, struct smtpc_msg *sm)
{
	struct ob_job *j = sm->user;
	const char *mta = cn->host.v[cn->cur];

	for (size_t k = 0; k < sm->nres && k < j->n; k++) {
		struct ob_res *r = &j->m->res[j->res_idx[k]];
		if (!r->final && sm->res[k].status != Q_TEMPFAIL) {
			ob_res_set(r, sm->res[k].status, sm->res[k].reply, mta, 1);
			r->dsn_passed = sm->dsn_passed;
			r->lmtp = cn->dest->route->type == ROUTE_LMTP;
		}
	}
}

static void ob_on_msg(struct smtpc *c, struct smtpc_msg *sm, void *arg)
{
	ob_take_final(arg, sm);
}

/* Temporary results: carried to the next host when the whole transaction
 * failed without the data having gone out, or was refused with a 4xx. */
static void ob_take_temp(struct ob_conn *cn, struct smtpc_msg *sm, enum smtpc_cause cause)
{
	struct ob_job *j = sm->user;
	const char *mta = cn->host.v[cn->cur];
	int decided = 0, carry;

	for (size_t k = 0; k < sm->nres && k < j->n; k++)
		decided |= sm->res[k].status != Q_TEMPFAIL;
	carry = !decided && (cause == SMTPC_OK || !sm->data_sent);
	for (size_t k = 0; k < j->n; k++) {
		struct ob_res *r = &j->m->res[j->res_idx[k]];
		const char *reply = k < sm->nres ? sm->res[k].reply : sm->reply;
		if (!r->final)
			ob_res_set(r, Q_TEMPFAIL, reply, mta, !carry);
	}
}

static void ob_conn_event(struct ob_conn *cn, const struct smtpc_session_result *r)
{
	const char *addr = cn->addr.v[cn->cur], *host = cn->host.v[cn->cur];
	const char *kv[] = {"destination", cn->dest->name, "address",
			    addr,	   "cause",	   smtpc_cause_name(r->cause),
			    NULL};

	if (r->cause == SMTPC_OK)
		return;
	if (r->cause == SMTPC_CONNECT_FAILED)
		event_logkv(EV_CONNECTION_REFUSED, kv, "Connection to %s (host %s, %s) failed: %s",
			    cn->dest->name, host, addr, r->text);
	else
		event_logkv(EV_CONNECT_FAILED, kv,
			    "SMTP session with %s (host %s, %s) failed: %s: %s", cn->dest->name,
			    host, addr, smtpc_cause_name(r->cause), r->text);
}

/* What is known of a peer, as empty files under DIR/peers (kept across
 * restarts): ADDR_PORT while the server there greets as a dialmail (EHLO
 * then goes without waiting for the greeting), DEST.nochunking while a
 * destination's server offers no CHUNKING (its mail is then shared among
 * parallel connections), line-ENTRY for a direct line's hub (dialup/direct.c). */
static char *ob_peer_file(struct queue *q, const char *name, int mkdir)
{
	char *dir = xasprintf("%s/peers", queue_dir(q)), *path = NULL;

	if (!mkdir || fs_mkdirs(dir, 0700) == 0)
		path = tls_resume_path(dir, name);
	free(dir);
	return path;
}

void outbound_peer_set(struct queue *q, const char *name, int yes)
{
	char *path = ob_peer_file(q, name, yes);
	int fd;

	if (path && !yes)
		unlink(path);
	else if (path && (fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	free(path);
}

int outbound_peer_has(struct queue *q, const char *name)
{
	char *path = ob_peer_file(q, name, 0);
	int yes = path && access(path, F_OK) == 0;

	free(path);
	return yes;
}

static void ob_peer_set(const struct outbound *o, const char *name, int yes)
{
	outbound_peer_set(o->q, name, yes);
}

static int ob_peer_has(const struct outbound *o, const char *name)
{
	return outbound_peer_has(o->q, name);
}

/* What the session said about the peer, for the next connections. */
static void ob_peer_learn(struct ob_conn *cn, const struct smtpc_session_result *r)
{
	char *nochunking;

	if (r->remote_mta && r->remote_mta[0]) /* a greeting came */
		ob_peer_set(cn->o, cn->addr.v[cn->cur], r->peer_dialmail);
	if (r->greeting_us > 0)
		cn->dest->rtt_us = r->greeting_us;
	if (!r->hello_done || cn->dest->no_chunking == !r->chunking)
		return;
	cn->dest->no_chunking = !r->chunking;
	nochunking = xasprintf("%s.nochunking", cn->dest->name);
	ob_peer_set(cn->o, nochunking, cn->dest->no_chunking);
	free(nochunking);
}

static void ob_on_done(struct smtpc *c, const struct smtpc_session_result *r, void *arg)
{
	struct ob_conn *cn = arg;

	for (size_t i = 0; i < cn->njobs; i++) {
		ob_take_final(cn, &cn->jobs[i]);
		ob_take_temp(cn, &cn->jobs[i], r->cause);
	}
	ob_conn_event(cn, r);
	ob_peer_learn(cn, r);
	log_debug("outbound: %s via %s: %s, %zu waits, %zu messages ok", cn->dest->name,
		  cn->addr.v[cn->cur], smtpc_cause_name(r->cause), r->waits, r->messages_ok);
	smtpc_free(c);
	cn->c = NULL;
	ob_jobs_free(cn);
	cn->cur++;
	ob_try(cn);
}

void outbound_timeouts(const struct config *cfg, struct smtpc_timeouts *t)
{
	t->connect = cfg->smtp_connect_timeout * 1000;
	t->banner = cfg->smtp_banner_timeout * 1000;
	t->helo = cfg->smtp_helo_timeout * 1000;
	t->mail = cfg->smtp_mail_timeout * 1000;
	t->rcpt = cfg->smtp_rcpt_timeout * 1000;
	t->data_init = cfg->smtp_data_init_timeout * 1000;
	t->data_block = cfg->smtp_data_block_timeout * 1000;
	t->data_end = cfg->smtp_data_done_timeout * 1000;
}

static void ob_smtpc_options(struct ob_conn *cn, struct smtpc_options *opt)
{
	const struct route *r = cn->dest->route;
	const struct config *cfg = cn->o->cfg;
	const struct auth_cred *cred = r->auth ? routes_auth(cfg->routes, r->auth) : NULL;

	memset(opt, 0, sizeof(*opt));
	opt->helo_name = cn->o->cfg->hostname;
	opt->server_name = cn->host.v[cn->cur];
	opt->tls = r->tls == ROUTE_TLS_NONE	  ? SMTPC_TLS_NONE
		   : r->tls == ROUTE_TLS_REQUIRED ? SMTPC_TLS_REQUIRED
						  : SMTPC_TLS_OPPORTUNISTIC;
	/* Required TLS verifies the chain, unless the route only pins. */
	opt->tls_verify = r->tls == ROUTE_TLS_REQUIRED && (r->fingerprint == NULL || r->ca != NULL);
	opt->ca_file = r->ca;
	opt->fingerprint = r->fingerprint;
	opt->auth_user = cred ? cred->user : NULL;
	opt->auth_pass = cred ? cred->password : NULL;
	opt->max_messages = (size_t)cn->o->cfg->max_messages_per_connection;
	opt->lmtp = r->type == ROUTE_LMTP;
	outbound_timeouts(cfg, &opt->t);
	opt->batch = cfg->batch_transfer;
	opt->batch_chunk = (size_t)cfg->batch_checkpoint_size;
	if (r->path) { /* a local socket: no TLS, no name to check */
		opt->tls = SMTPC_TLS_NONE;
		opt->server_name = NULL;
	}
}

static void ob_finish(struct ob_conn *cn, int aborted);

/* The file of the TLS session kept for the address being tried, under
 * DIR/tls (mode 0700: the files hold session secrets); NULL if the folder
 * cannot be made (no resumption then). */
static char *ob_tls_session(struct ob_conn *cn)
{
	char *dir = xasprintf("%s/tls", queue_dir(cn->o->q)), *path = NULL;

	if (fs_mkdirs(dir, 0700) == 0)
		path = tls_resume_path(dir, cn->addr.v[cn->cur]);
	else
		log_warn("outbound: %s", dir);
	free(dir);
	return path;
}

/* Connects to the next target for the recipients still open, or finishes. */
static void ob_try(struct ob_conn *cn)
{
	struct smtpc_options opt;

	while (cn->cur < cn->addr.n && ob_jobs_build(cn) > 0) {
		char *sess = NULL;

		ob_smtpc_options(cn, &opt);
		if (opt.tls != SMTPC_TLS_NONE)
			opt.tls_session = sess = ob_tls_session(cn);
		opt.early_ehlo = !opt.lmtp && ob_peer_has(cn->o, cn->addr.v[cn->cur]);
		cn->c = smtpc_new(cn->o->base, &opt, cn->jobs, cn->njobs, ob_on_done, cn);
		free(sess);
		smtpc_set_msg_cb(cn->c, ob_on_msg);
		if (smtpc_connect(cn->c, cn->addr.v[cn->cur]) == 0)
			return;
		smtpc_free(cn->c);
		cn->c = NULL;
		ob_jobs_free(cn);
		log_warnx("outbound: %s: unusable address %s", cn->dest->name, cn->addr.v[cn->cur]);
		cn->cur++;
	}
	ob_jobs_free(cn);
	ob_finish(cn, 0);
}

static void ob_on_dns(const struct mx_result *r, void *arg)
{
	struct ob_conn *cn = arg;

	cn->dns = NULL;
	if (r->status != Q_OK) {
		const char *kv[] = {"destination", cn->dest->name, NULL};
		if (r->status == Q_TEMPFAIL)
			event_logkv(EV_CANNOT_RESOLVE, kv, "Cannot resolve %s: %s", cn->dest->name,
				    r->error);
		for (size_t i = 0; i < cn->nm; i++)
			for (size_t k = 0; k < cn->m[i].nidx; k++)
				if (!cn->m[i].res[k].final) /* not a suppressed duplicate */
					ob_res_set(&cn->m[i].res[k], r->status, r->error, NULL, 1);
		ob_finish(cn, 0);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		strlist_add(&cn->addr, r->v[i].addr);
		strlist_add(&cn->host, r->v[i].host);
	}
	ob_try(cn);
}

/* --------------------------------------------------- storing results */

static void ob_event_rcpt(int id, const struct q_env *env, const char *rcpt, const char *reply,
			  const char *mta, const char *fmt_tail)
{
	const char *kv[] = {"qid", env->id, "rcpt", rcpt, "reply", reply, mta ? "remote_mta" : NULL,
			    mta,   NULL};

	event_logkv(id, kv, "Message %s to %s %s%s%s%s: %s", env->id, rcpt, fmt_tail,
		    mta ? " (remote host " : "", mta ? mta : "", mta ? ")" : "", reply);
}

struct ob_reports {
	struct dsn_rcpt *failed, *delayed, *success;
	size_t nfailed, ndelayed, nsuccess;
};

static void ob_report_add(struct dsn_rcpt **v, size_t *n, const char *addr, enum dsn_action action,
			  const struct ob_res *res, time_t now, time_t until)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	memset(&(*v)[*n], 0, sizeof(**v));
	(*v)[*n].addr = addr;
	(*v)[*n].action = action;
	(*v)[*n].remote_mta = res->mta;
	(*v)[*n].diagnostic = res->reply;
	(*v)[*n].last_attempt = now;
	(*v)[*n].retry_until = until;
	(*n)++;
}

static void ob_set_reply_text(struct q_rcpt *r, const char *text)
{
	free(r->last_reply);
	r->last_reply = xstrdup(text);
}

/* Event and tracking line of a failed recipient; they say so when its
 * NOTIFY asks for no failure report. */
static void ob_bounced(const struct q_env *env, const struct q_rcpt *r, const char *reply,
		       const char *mta)
{
	int quiet = !dsn_notify_wants(r->notify, DSN_ACTION_FAILED);
	char *detail = quiet ? xasprintf("%s (DSN suppressed by NOTIFY)", reply) : NULL;

	ob_event_rcpt(EV_OUTBOUND_BOUNCED, env, r->addr, reply, mta,
		      quiet ? "failed, DSN suppressed by NOTIFY" : "failed");
	track(TRK_BOUNCED, env->id, env->message_id, env->sender, r->addr, quiet ? detail : reply);
	free(detail);
}

/* Applies one recipient's result to r (the message's current state). */
static void ob_apply(struct outbound *o, struct q_env *env, enum retry_priority prio,
		     struct q_rcpt *r, struct ob_res *res, time_t now, struct ob_reports *rep)
{
	char when[64], *key;

	ob_set_reply_text(r, res->reply);
	if (res->status == Q_OK && res->dup) {
		r->state = RCPT_DELIVERED; /* event 2023 told it */
		return;
	}
	if (res->status == Q_OK) {
		r->state = RCPT_DELIVERED;
		if (outbound_mailbox_route(o, r->addr))
			dedup_record(o->dedup, env, r->addr);
		ob_event_rcpt(EV_OUTBOUND_DELIVERED, env, r->addr, res->reply, res->mta,
			      "delivered");
		char *detail = xasprintf("%s: %s", res->mta ? res->mta : "", res->reply);
		track(TRK_SENT, env->id, env->message_id, env->sender, r->addr, detail);
		free(detail);
		/* NOTIFY=SUCCESS: a server that took the DSN parameters reports
		 * itself; otherwise we say "relayed" (RFC 3461 6.2.2), or
		 * "delivered" when an LMTP server did the final delivery. */
		if ((r->notify & DSN_NOTIFY_SUCCESS) && !res->dsn_passed)
			ob_report_add(&rep->success, &rep->nsuccess, r->addr,
				      res->lmtp ? DSN_ACTION_DELIVERED : DSN_ACTION_RELAYED, res,
				      now, 0);
		return;
	}
	r->attempts++;
	if (res->status == Q_TEMPFAIL && !retry_expired(&o->policy, env->created, prio, now)) {
		r->next_attempt = retry_next_attempt(&o->policy, env->created, prio, now,
						     r->attempts, retry_seed(env->id, r->addr));
		clock_iso8601((int64_t)r->next_attempt * 1000000, when, sizeof(when));
		{
			const char *kv[] = {"qid",   env->id,	 "rcpt", r->addr,
					    "reply", res->reply, NULL};
			event_logkv(
			    EV_OUTBOUND_DEFERRED, kv,
			    "Delivery of message %s to %s deferred (attempt %d, next at %s): %s",
			    env->id, r->addr, r->attempts, when, res->reply);
		}
		track(TRK_DEFERRED, env->id, env->message_id, env->sender, r->addr, res->reply);
		key = xasprintf("%s %s", env->id, r->addr);
		if (dsn_notify_wants(r->notify, DSN_ACTION_DELAYED) &&
		    retry_warning_due(&o->policy, env->created, prio, now,
				      strlist_has(&o->warned, key))) {
			strlist_add(&o->warned, key);
			ob_report_add(&rep->delayed, &rep->ndelayed, r->addr, DSN_ACTION_DELAYED,
				      res, now, retry_expires_at(&o->policy, env->created, prio));
		}
		free(key);
		return;
	}
	if (res->status == Q_TEMPFAIL) {
		char *why = xasprintf(
		    "%s (message expired after %ld s in the queue; last reply: %s)",
		    "4.4.7 delivery time expired", (long)(now - env->created), res->reply);
		free(res->reply);
		res->reply = why;
		ob_set_reply_text(r, why);
	}
	r->state = RCPT_FAILED;
	ob_bounced(env, r, res->reply, res->mta);
	ob_report_add(&rep->failed, &rep->nfailed, r->addr, DSN_ACTION_FAILED, res, now, 0);
}

static int ob_all_done(const struct q_env *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_PENDING)
			return 0;
	return 1;
}

/* Stores the results of one message; returns the number delivered. The
 * DSNs are queued before the state that makes them due is written. */
static int ob_store(struct outbound *o, struct ob_msg *m, int aborted, int *n_def, int *n_fail)
{
	struct q_env env;
	struct ob_reports rep;
	enum retry_priority prio = retry_priority_of(m->content.data, m->content.len);
	time_t now = clock_now();
	int n_ok = 0, changed = 0;

	memset(&env, 0, sizeof(env));
	memset(&rep, 0, sizeof(rep));
	if (queue_load(o->q, m->env.id, &env, NULL) != Q_OK) {
		log_warnx("outbound: message %s disappeared; its results are dropped", m->env.id);
		return 0;
	}
	for (size_t k = 0; k < m->nidx; k++) {
		struct ob_res *res = &m->res[k];
		struct q_rcpt *r = m->idx[k] < env.nrcpt ? &env.rcpt[m->idx[k]] : NULL;

		if (r == NULL || r->state != RCPT_PENDING ||
		    strcmp(r->addr, m->env.rcpt[m->idx[k]].addr) != 0 || res->reply == NULL ||
		    (aborted && !res->final))
			continue;
		ob_apply(o, &env, prio, r, res, now, &rep);
		changed = 1;
		n_ok += r->state == RCPT_DELIVERED && !res->dup; /* sent, not suppressed */
		*n_fail += r->state == RCPT_FAILED;
		*n_def += r->state == RCPT_PENDING;
	}
	if (rep.nfailed)
		outbound_dsn(o, &env, &m->content, rep.failed, rep.nfailed);
	if (rep.ndelayed)
		outbound_dsn(o, &env, &m->content, rep.delayed, rep.ndelayed);
	if (rep.nsuccess)
		outbound_dsn(o, &env, &m->content, rep.success, rep.nsuccess);
	if (changed && queue_update_later(o->q, &env) != 0)
		event_log(EV_QUEUE_WRITE_FAILED,
			  "Cannot store the delivery state of message %s; it will be retried",
			  env.id);
	else if (changed && ob_all_done(&env) && queue_remove(o->q, env.id) != 0)
		log_warn("outbound: cannot remove finished message %s", env.id);
	free(rep.failed);
	free(rep.delayed);
	free(rep.success);
	q_env_free(&env);
	return n_ok;
}

static void ob_msg_free(struct ob_msg *m)
{
	for (size_t k = 0; k < m->nidx; k++) {
		free(m->res[k].reply);
		free(m->res[k].mta);
	}
	free(m->res);
	free(m->idx);
	q_env_free(&m->env);
	buf_free(&m->content);
}

static void ob_idle_check(struct outbound *o);

static void ob_conn_unlink(struct outbound *o, struct ob_conn *cn)
{
	for (struct ob_conn **pp = &o->conns; *pp; pp = &(*pp)->next)
		if (*pp == cn) {
			*pp = cn->next;
			break;
		}
}

static void ob_inflight_drop(struct outbound *o, const char *qid)
{
	for (size_t i = 0; i < o->inflight.n; i++)
		if (strcmp(o->inflight.v[i], qid) == 0) {
			free(o->inflight.v[i]);
			o->inflight.v[i] = o->inflight.v[--o->inflight.n];
			return;
		}
}

/* The connection is over (or aborted): open recipients get their last
 * temporary result, everything is stored, and the slot is freed. */
static void ob_finish(struct ob_conn *cn, int aborted)
{
	struct outbound *o = cn->o;
	struct ob_link *l = cn->dest->route->via ? ob_link(o, cn->dest->route->via, 0) : NULL;
	int n_ok = 0, n_def = 0, n_fail = 0;

	for (size_t i = 0; i < cn->nm; i++) {
		struct ob_msg *m = &cn->m[i];
		int ok;

		for (size_t k = 0; !aborted && k < m->nidx; k++)
			if (!m->res[k].final)
				ob_res_set(&m->res[k], Q_TEMPFAIL,
					   m->res[k].reply ? m->res[k].reply
							   : "4.4.1 no host to connect to",
					   m->res[k].mta, 1);
		ok = ob_store(o, m, aborted, &n_def, &n_fail);
		n_ok += ok;
		if (l && ok) {
			l->msgs_out++;
			l->bytes_out += m->content.len;
		}
		ob_inflight_drop(o, m->env.id);
		ob_msg_free(m);
	}
	if (n_ok + n_def + n_fail > 0)
		event_log(EV_DELIVERY_ATTEMPTED,
			  "Delivery to %s: %d delivered, %d deferred, %d undeliverable",
			  cn->dest->name, n_ok, n_def, n_fail);
	free(cn->m);
	strlist_free(&cn->addr);
	strlist_free(&cn->host);
	cn->dest->nconns--;
	o->nconns--;
	ob_conn_unlink(o, cn);
	free(cn);
	if (!o->stopping) {
		ob_start_all(o);
		ob_idle_check(o);
		ob_release_check(o);
	}
}

static void ob_on_start(evutil_socket_t fd, short what, void *arg)
{
	struct ob_conn *cn = arg;

	event_free(cn->ev_start);
	cn->ev_start = NULL;
	ob_try(cn);
}

/* An LMTP socket needs no DNS; the session starts from a timer all the same,
 * so a connection never finishes inside the loop that started it. */
static void ob_start_unix(struct ob_conn *cn)
{
	struct timeval now = {0, 0};
	char *addr = xasprintf("unix:%s", cn->dest->route->path);

	strlist_add(&cn->addr, addr);
	strlist_add(&cn->host, "localhost");
	free(addr);
	cn->ev_start = evtimer_new(cn->o->base, ob_on_start, cn);
	evtimer_add(cn->ev_start, &now);
}

/* Loads message w for a connection to d: the recipients it carries. */
/* Hand-off to the site's mailbox server: a copy of a message it already
 * took for a recipient (a resend after a dropped line) is not sent again;
 * the recipient counts as delivered (event 2023 from dedup). */
static void ob_msg_dedup(struct outbound *o, struct ob_msg *m)
{
	struct buf reply = BUF_INIT;

	for (size_t k = 0; o->dedup && k < m->nidx; k++) {
		const char *addr = m->env.rcpt[m->idx[k]].addr;
		buf_reset(&reply);
		if (!outbound_mailbox_route(o, addr) ||
		    !dedup_suppress(o->dedup, &m->env, addr, &reply))
			continue;
		ob_res_set(&m->res[k], Q_OK, buf_cstr(&reply), NULL, 1);
		m->res[k].dup = 1;
	}
	buf_free(&reply);
}

static int ob_msg_load(struct outbound *o, struct ob_dest *d, const struct ob_wait *w,
		       struct ob_msg *m)
{
	time_t now = clock_now();

	memset(m, 0, sizeof(*m));
	if (queue_load(o->q, w->qid, &m->env, &m->content) != Q_OK)
		goto none;
	m->idx = xcalloc(m->env.nrcpt + 1, sizeof(size_t));
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		const struct q_rcpt *r = &m->env.rcpt[i];
		const struct route *rt = NULL;
		char *domain = NULL;
		int same;

		if (r->state != RCPT_PENDING || (!w->force && r->next_attempt > now))
			continue;
		if (ob_classify(o, r->addr, &rt, &domain) != OB_SEND) {
			free(domain);
			continue;
		}
		same = rt == d->route && (d->domain == NULL || strcmp(d->domain, domain) == 0);
		free(domain);
		if (same)
			m->idx[m->nidx++] = i;
	}
	if (m->nidx == 0)
		goto none;
	m->res = xcalloc(m->nidx, sizeof(*m->res));
	ob_msg_dedup(o, m);
	return 0;
none:
	ob_msg_free(m);
	return -1;
}

int outbound_parallel(int cap, long bps, long long rtt_us, uint64_t mean_bytes)
{
	uint64_t bdp, n;

	if (bps <= 0 || rtt_us <= 0 || mean_bytes == 0)
		return cap;
	bdp = (uint64_t)bps * (uint64_t)rtt_us / 8000000; /* bytes one round trip holds */
	n = 1 + (bdp + mean_bytes - 1) / mean_bytes;
	return n < (uint64_t)cap ? (int)n : cap;
}

/* The bandwidth of the link d's route goes through (via=), 0 unknown. */
static long ob_dest_bps(const struct outbound *o, const struct ob_dest *d)
{
	const struct ob_link *l =
	    d->route->via ? ob_link((struct outbound *)o, d->route->via, 0) : NULL;

	return l && l->up ? l->bps : 0;
}

/* Connections at once to d. Without CHUNKING each message waits a round
 * trip for its 354: towards such a server the messages are shared among
 * as many connections as keep the link busy through those waits (the
 * bandwidth-delay product over the mean message size, plus one), at most
 * max_connections_without_chunking; as many as that when the link's
 * bandwidth or the round trip is not known. */
static int ob_dest_limit(const struct outbound *o, const struct ob_dest *d)
{
	int n = o->cfg->max_connections_per_destination, cap;
	uint64_t total = 0;

	if (!d->no_chunking || o->cfg->max_connections_without_chunking <= n)
		return n;
	for (size_t i = 0; i < d->nwait; i++)
		total += d->wait[i].size;
	cap = outbound_parallel(o->cfg->max_connections_without_chunking, ob_dest_bps(o, d),
				d->rtt_us, d->nwait ? total / d->nwait : 0);
	return cap > n ? cap : n;
}

/* Messages for the next connection to d: up to max_messages_per_connection,
 * and towards a server without CHUNKING an even share of what waits. */
static size_t ob_conn_share(const struct outbound *o, const struct ob_dest *d)
{
	size_t max = (size_t)o->cfg->max_messages_per_connection;
	int free_slots = ob_dest_limit(o, d) - d->nconns;

	if (d->no_chunking && free_slots > 1) {
		size_t share = (d->nwait + (size_t)free_slots - 1) / (size_t)free_slots;
		if (share < max)
			max = share ? share : 1;
	}
	return max;
}

/* Opens one connection to d with its share (ob_conn_share) of the waiting
 * messages that are not on another connection. */
static int ob_conn_start(struct outbound *o, struct ob_dest *d)
{
	struct ob_conn *cn = xcalloc(1, sizeof(*cn));
	size_t max = ob_conn_share(o, d);
	const struct route *r = d->route;

	cn->o = o;
	cn->dest = d;
	cn->m = xcalloc(max < d->nwait ? max : d->nwait, sizeof(*cn->m));
	for (size_t i = 0; i < d->nwait && cn->nm < max;) {
		if (strlist_has(&o->inflight, d->wait[i].qid)) {
			i++;
			continue;
		}
		if (ob_msg_load(o, d, &d->wait[i], &cn->m[cn->nm]) == 0) {
			strlist_add(&o->inflight, d->wait[i].qid);
			cn->nm++;
		}
		ob_dest_drop(d, i);
	}
	if (cn->nm == 0) {
		free(cn->m);
		free(cn);
		return -1;
	}
	d->nconns++;
	o->nconns++;
	cn->next = o->conns;
	o->conns = cn;
	if (r->type == ROUTE_MX)
		cn->dns = mx_lookup(o->mx, d->domain, r->port, ob_on_dns, cn);
	else if (r->path)
		ob_start_unix(cn);
	else
		cn->dns = mx_host(o->mx, r->host, r->port, ob_on_dns, cn);
	return 0;
}

static void ob_start_all(struct outbound *o)
{
	for (struct ob_dest *d = o->dests; d; d = d->next)
		while (d->nwait > 0 && d->nconns < ob_dest_limit(o, d) &&
		       o->nconns < o->cfg->max_outbound_connections)
			if (ob_conn_start(o, d) < 0)
				break;
}

/* --------------------------------------------------------- passes */

void outbound_pass_scheduled(struct outbound *o)
{
	o->pass_scheduled = 1;
}

void outbound_pass_begin(struct outbound *o, int full)
{
	o->pass_scheduled = 0;
	o->pass_full = full;
	for (struct ob_link *l = o->links; full && l; l = l->next)
		l->waiting = 0;
}

void outbound_pass_slice(struct outbound *o)
{
	o->pass_scheduled = 1; /* the rest of the pass is to come */
	ob_start_all(o);
}

void outbound_pass_end(struct outbound *o)
{
	for (struct ob_release *rel = o->releases; o->pass_full && rel; rel = rel->next)
		rel->passed |= rel->active;
	ob_start_all(o);
	ob_idle_check(o);
	ob_release_check(o);
}

/* ---------------------------------------------------- ETRN releases */

/* A release is over once a full pass offered its mail and nothing of it
 * waits or is on a connection; what was deferred is held again. */
static void ob_release_check(struct outbound *o)
{
	for (struct ob_release *rel = o->releases; rel; rel = rel->next) {
		int busy = 0;
		if (!rel->active || !rel->passed || o->pass_scheduled)
			continue;
		for (struct ob_dest *d = o->dests; d; d = d->next)
			busy |= d->route == &rel->route && (d->nwait || d->nconns);
		if (busy)
			continue;
		rel->active = 0;
		{
			const char *kv[] = {"domain", rel->domain, NULL};
			event_logkv(EV_ETRN_RELEASE_DONE, kv,
				    "Delivery of the mail released for %s%s to %s port %d is over",
				    rel->sub ? "@" : "", rel->domain, rel->route.host,
				    rel->route.port);
		}
	}
}

void outbound_release(struct outbound *o, const char *domain, int sub, const char *host, int port)
{
	struct ob_release *rel;

	for (rel = o->releases; rel; rel = rel->next)
		if (strcmp(rel->domain, domain) == 0 && rel->sub == sub &&
		    strcmp(rel->route.host, host) == 0 && rel->route.port == port)
			break;
	if (rel == NULL) {
		rel = xcalloc(1, sizeof(*rel));
		rel->domain = xstrdup(domain);
		rel->sub = sub;
		rel->route.domain = rel->domain;
		rel->route.type = ROUTE_SMARTHOST;
		rel->route.host = xstrdup(host);
		rel->route.port = port;
		rel->route.tls = ROUTE_TLS_OPPORTUNISTIC;
		rel->next = o->releases;
		o->releases = rel;
	}
	/* Another release of the domain to elsewhere ends: the newest wins. */
	for (struct ob_release *r = o->releases; r; r = r->next)
		if (r != rel && strcmp(r->domain, domain) == 0)
			r->active = 0;
	rel->active = 1;
	rel->passed = 0;
}

int outbound_released(struct outbound *o, const char *addr)
{
	char *d;
	int yes;

	if (o->releases == NULL)
		return 0;
	d = ob_domain(addr);
	yes = ob_release_for(o, d) != NULL;
	free(d);
	return yes;
}

/* ----------------------------------------------------------- links */

int outbound_link_busy(struct outbound *o, const char *name)
{
	struct ob_link *l = ob_link(o, name, 0);

	if (l == NULL)
		return 0;
	if (!l->up)
		return l->waiting > 0;
	if (o->pass_scheduled)
		return 1;
	for (struct ob_dest *d = o->dests; d; d = d->next)
		if (d->route->via && strcmp(d->route->via, name) == 0 && (d->nwait || d->nconns))
			return 1;
	return 0;
}

static void ob_on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct outbound *o = arg;

	for (struct ob_link *l = o->links; l; l = l->next)
		if (l->up && l->idle_pending && l->on_idle && !outbound_link_busy(o, l->name)) {
			l->idle_pending = 0;
			l->on_idle(l->name, l->arg); /* may call outbound_link_down */
			ob_idle_check(o);	     /* the list may have changed: again later */
			return;
		}
}

/* Idle callbacks run from a timer: never inside our own callers' frames. */
static void ob_idle_check(struct outbound *o)
{
	struct timeval now = {0, 0};
	int owed = 0;

	for (struct ob_link *l = o->links; l; l = l->next)
		owed |= l->up && l->idle_pending;
	if (owed && o->ev_idle && !evtimer_pending(o->ev_idle, NULL))
		evtimer_add(o->ev_idle, &now);
}

void outbound_link_up(struct outbound *o, const char *name, long bps,
		      void (*on_idle)(const char *name, void *arg), void *arg)
{
	struct ob_link *l = ob_link(o, name, 1);

	l->up = 1;
	l->bps = bps;
	l->idle_pending = 1;
	l->on_idle = on_idle;
	l->arg = arg;
	l->msgs_out = 0;
	l->bytes_out = 0;
}

/* Drops a connection: final results are stored, the rest stays queued. */
static void ob_abort(struct ob_conn *cn)
{
	if (cn->dns)
		mx_cancel(cn->dns);
	cn->dns = NULL;
	if (cn->ev_start)
		event_free(cn->ev_start);
	cn->ev_start = NULL;
	if (cn->c)
		smtpc_free(cn->c);
	cn->c = NULL;
	ob_jobs_free(cn);
	ob_finish(cn, 1);
}

void outbound_link_down(struct outbound *o, const char *name)
{
	struct ob_link *l = ob_link(o, name, 0);
	int stopping = o->stopping;
	struct ob_conn *cn, *next;

	if (l == NULL)
		return;
	l->up = 0;
	l->idle_pending = 0;
	l->on_idle = NULL;
	for (struct ob_dest *d = o->dests; d; d = d->next)
		if (d->route->via && strcmp(d->route->via, name) == 0)
			d->nwait = 0;
	o->stopping = 1; /* no new connections while these are dropped */
	for (cn = o->conns; cn; cn = next) {
		next = cn->next;
		if (cn->dest->route->via && strcmp(cn->dest->route->via, name) == 0)
			ob_abort(cn);
	}
	o->stopping = stopping;
	if (!stopping)
		ob_start_all(o);
}

void outbound_link_stats(struct outbound *o, const char *name, unsigned *msgs_out,
			 unsigned long long *bytes_out)
{
	struct ob_link *l = ob_link(o, name, 0);

	*msgs_out = l ? l->msgs_out : 0;
	*bytes_out = l ? l->bytes_out : 0;
}

/* ------------------------------------------------------- life cycle */

void outbound_set_dedup(struct outbound *o, struct dedup *dd)
{
	o->dedup = dd;
}

void outbound_reconfigure(struct outbound *o)
{
	const struct config *cfg = o->cfg;

	o->mode = routes_transfer_mode(cfg->transfer_mode ? cfg->transfer_mode : "both");
	retry_policy_from_config(&o->policy, cfg);
	free(o->postmaster);
	o->postmaster =
	    strchr(cfg->postmaster, '@')
		? xstrdup(cfg->postmaster)
		: xasprintf("%s@%s", cfg->postmaster,
			    cfg->local_domains.n ? cfg->local_domains.v[0] : "localhost");
}

struct outbound *outbound_new(struct event_base *base, const struct config *cfg, struct queue *q,
			      void (*kick)(const char *qid, void *arg), void *arg)
{
	struct outbound *o = xcalloc(1, sizeof(*o));
	struct buf err = BUF_INIT;

	o->base = base;
	o->cfg = cfg;
	o->q = q;
	o->kick = kick;
	o->kick_arg = arg;
	outbound_reconfigure(o);
	o->mx = mx_new(base, &cfg->dns_servers, &err);
	if (o->mx == NULL)
		fatalx("outbound: cannot set up DNS: %s", buf_cstr(&err));
	buf_free(&err);
	o->ev_idle = evtimer_new(base, ob_on_idle, o);
	return o;
}

void outbound_free(struct outbound *o)
{
	struct ob_dest *d, *dn;
	struct ob_link *l, *ln;

	if (o == NULL)
		return;
	o->stopping = 1;
	while (o->conns)
		ob_abort(o->conns);
	for (d = o->dests; d; d = dn) {
		dn = d->next;
		free(d->wait);
		free(d->domain);
		free(d->name);
		free(d);
	}
	for (l = o->links; l; l = ln) {
		ln = l->next;
		free(l->name);
		free(l);
	}
	while (o->releases) {
		struct ob_release *rel = o->releases;
		o->releases = rel->next;
		free(rel->domain);
		free(rel->route.host);
		free(rel);
	}
	mx_free(o->mx);
	if (o->ev_idle)
		event_free(o->ev_idle);
	strlist_free(&o->inflight);
	strlist_free(&o->noroute);
	strlist_free(&o->warned);
	free(o->postmaster);
	free(o);
}
