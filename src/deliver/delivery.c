/* Delivery: hands each due, pending recipient of a queued message to a
 * transport (Maildir here, SMTP through deliver/outbound.c) and stores the
 * outcome. Invariant: an outcome is stored only after the transport has
 * reported it (the Maildir file is fsync'd first, the remote server said
 * 2xx), so a crash between the two can duplicate a delivery, never lose one. */
#include <stdlib.h>
#include <string.h>

#include "deliver/dedup.h"
#include "deliver/delivery.h"
#include "mail/event.h"
#include "deliver/maildir.h"
#include "deliver/outbound.h"
#include "mail/recipient.h"
#include "mail/routes.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"
#include "smtp/dsn.h"
#include "queue/qindex.h"
#include "queue/retry.h"

#define DELIVERY_BACKOFF_MIN 300   /* first retry after 5 minutes... */
#define DELIVERY_BACKOFF_MAX 3600  /* ...doubling up to one hour */
#define DELIVERY_ALIAS_DEPTH 10	   /* deeper alias chains are loops */
#define DELIVERY_SLICE_MS    5	   /* work of a pass between looks at the loop */
#define DELIVERY_SORT_MAX    20000 /* ids found by a listing sorted in one go (about 10 ms) */

struct delivery {
	struct event_base *base;
	const struct config *cfg;
	struct queue *q;
	char *dir;
	const struct transport *local; /* Maildir now; LMTP/SMTP hand-off later */
	struct event *ev_run;	       /* 0-timeout timer: runs after replies go out */
	struct strlist kicked;	       /* message ids waiting for ev_run */
	int scan_wanted;
	int flush_wanted;	       /* the next full pass ignores retry times */
	int flushing;		       /* this pass does */
	struct strlist flush_links;    /* links just up: the next full pass sends their mail */
	struct strlist flushing_links; /* this pass does, whatever its retry times */
	struct outbound *out;	       /* SMTP delivery; NULL without an event loop */
	struct dedup *dedup;	       /* inbound duplicate suppression; NULL: off */
	/* A full pass runs the messages the index says are due (its due-time
	 * heap, oldest due first), in slices of DELIVERY_SLICE_MS, back to the
	 * event loop in between, so a large queue does not stall SMTP. */
	int in_pass;
	time_t pass_start;	    /* the pass runs what is due by then */
	struct retry_policy policy; /* for the expiry of mail that cannot go */
	int discover_wanted;	    /* the next pass lists queue/ for unknown ids */
	struct q_lister *lister;    /* listing the queue for the pass, or NULL */
	struct strlist pass_ids;    /* ids listed that the index did not know */
	size_t pass_pos;	    /* next of pass_ids to run */
};

/* Where an alias (or a plain local recipient) leads. */
struct expansion {
	struct strlist local;  /* "user@domain", user a safe mailbox name */
	struct strlist remote; /* full addresses in other domains */
	struct strlist bad;    /* targets that cannot name a mailbox */
	int loop;
};

static char *delivery_lower(const char *s, size_t n)
{
	char *p = xstrndup(s, n);

	for (char *c = p; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return p;
}

/* When this process began delivering: mail that arrived before may have
 * been delivered by an earlier run that died before it stored the fact. */
static time_t delivery_started;

/* The Maildir transport: the mailbox is the lower-cased local part of rcpt,
 * which maildir_deliver checks again before it becomes a path. A message
 * is stored under a name made of its queue id and rcpt, once. */
static int transport_maildir_deliver(const struct config *cfg, const char *dir,
				     const struct q_env *env, const struct buf *content,
				     const char *rcpt, struct buf *reply)
{
	const char *at = strrchr(rcpt, '@');
	char *user = delivery_lower(rcpt, at ? (size_t)(at - rcpt) : strlen(rcpt));
	int rc = maildir_deliver_once(dir, user, env, rcpt, content,
				      env->created < delivery_started, reply);

	free(user);
	return rc;
}

const struct transport transport_maildir = {"maildir", transport_maildir_deliver};

static void delivery_add_unique(struct strlist *l, const char *s)
{
	if (!strlist_has(l, s))
		strlist_add(l, s);
}

/* Follows aliases from user@domain. Alias targets come from the operator's
 * configuration, so a target need not be a listed recipient, but it must
 * still be a safe mailbox name. A target naming its own alias means the
 * alias's own mailbox (sales = sales, archive). */
static void delivery_expand(const struct config *cfg, const char *user, const char *domain,
			    int depth, struct expansion *x)
{
	const struct alias *a = config_alias(cfg, user);

	if (depth > DELIVERY_ALIAS_DEPTH) {
		x->loop = 1;
		return;
	}
	if (a == NULL) {
		char *addr = xasprintf("%s@%s", user, domain);
		delivery_add_unique(&x->local, addr);
		free(addr);
		return;
	}
	for (size_t i = 0; i < a->targets.n; i++) {
		const char *t = a->targets.v[i], *at = strrchr(t, '@');
		char *tuser = delivery_lower(t, at ? (size_t)(at - t) : strlen(t));
		char *tdomain = at ? delivery_lower(at + 1, strlen(at + 1)) : xstrdup(domain);

		if (!config_is_local_domain(cfg, tdomain))
			delivery_add_unique(&x->remote, t);
		else if (!recipient_user_valid(tuser))
			delivery_add_unique(&x->bad, t);
		else if (strcmp(tuser, user) == 0) {
			char *addr = xasprintf("%s@%s", tuser, tdomain);
			delivery_add_unique(&x->local, addr);
			free(addr);
		} else
			delivery_expand(cfg, tuser, tdomain, depth + 1, x);
		free(tuser);
		free(tdomain);
	}
}

static void delivery_expansion_free(struct expansion *x)
{
	strlist_free(&x->local);
	strlist_free(&x->remote);
	strlist_free(&x->bad);
}

/* Queues a copy of the message for alias targets in other domains, as
 * Postfix's local(8) forwards: a new message with the same sender, which
 * the outbound transport (issue 3) delivers. */
static int delivery_forward(struct delivery *d, const struct q_env *env, const struct buf *content,
			    const struct strlist *remote, struct buf *reply)
{
	struct iovec iov = {content->data, content->len};
	struct q_env fwd;
	int rc;

	memset(&fwd, 0, sizeof(fwd));
	fwd.created = clock_now();
	fwd.sender = xstrdup(env->sender);
	fwd.client = xstrdup("local");
	fwd.message_id = env->message_id ? xstrdup(env->message_id) : NULL;
	fwd.size = content->len;
	for (size_t i = 0; i < remote->n; i++)
		q_env_add_rcpt(&fwd, remote->v[i]);
	rc = queue_commit(d->q, &fwd, &iov, 1);
	if (rc != Q_OK)
		buf_printf(reply, "4.3.0 cannot queue the copy for alias targets elsewhere");
	else
		buf_printf(reply, "2.0.0 forwarded as %s to %zu address(es) elsewhere", fwd.id,
			   remote->n);
	for (size_t i = 0; rc == Q_OK && i < remote->n; i++)
		track(TRK_QUEUED_OUTBOUND, fwd.id, fwd.message_id, fwd.sender, remote->v[i],
		      env->id);
	q_env_free(&fwd);
	return rc == Q_OK ? Q_OK : Q_TEMPFAIL;
}

/* Delivers to one local mailbox through the local transport. */
static int delivery_mailbox(struct delivery *d, const struct q_env *env, const struct buf *content,
			    const char *orig, const char *target, struct buf *reply)
{
	const char *at = strrchr(target, '@');
	char *user = xstrndup(target, (size_t)(at - target));
	char *mailbox = maildir_path(d->dir, user);
	int rc;

	buf_reset(reply);
	if (dedup_suppress(d->dedup, env, target, reply)) {
		free(user);
		free(mailbox);
		return Q_OK; /* delivered before: the recipient is marked delivered */
	}
	rc = d->local->deliver(d->cfg, d->dir, env, content, target, reply);
	if (rc == Q_OK) {
		dedup_record(d->dedup, env, target);
		const char *kv[] = {"qid",
				    env->id,
				    "rcpt",
				    target,
				    "mailbox",
				    mailbox,
				    strcmp(orig, target) ? "orig_rcpt" : NULL,
				    orig,
				    NULL};
		event_logkv(EV_LOCAL_DELIVERED, kv, "Message %s delivered to %s in %s", env->id,
			    target, mailbox);
		track(TRK_DELIVERED_LOCAL, env->id, env->message_id, env->sender, target,
		      buf_cstr(reply));
	}
	free(user);
	free(mailbox);
	return rc;
}

/* Delivers to a local recipient and everything its aliases lead to. Any
 * temporary failure defers the whole recipient (mailboxes already reached
 * may then get a duplicate: never a loss). */
static int delivery_local(struct delivery *d, const struct q_env *env, const struct buf *content,
			  const char *rcpt, struct buf *reply)
{
	const char *at = strrchr(rcpt, '@');
	char *user = delivery_lower(rcpt, (size_t)(at - rcpt));
	char *domain = delivery_lower(at + 1, strlen(at + 1));
	struct expansion x;
	int n_ok = 0, rc = Q_OK;

	memset(&x, 0, sizeof(x));
	delivery_expand(d->cfg, user, domain, 0, &x);
	for (size_t i = 0; i < x.bad.n; i++)
		log_warnx("delivery: alias %s: target \"%s\" cannot name a mailbox", user,
			  x.bad.v[i]);
	if (x.loop) {
		buf_printf(reply, "5.4.6 alias loop for %s (more than %d levels)", rcpt,
			   DELIVERY_ALIAS_DEPTH);
		rc = Q_PERMFAIL;
		goto out;
	}
	for (size_t i = 0; i < x.local.n && rc != Q_TEMPFAIL; i++) {
		buf_reset(reply);
		rc = delivery_mailbox(d, env, content, rcpt, x.local.v[i], reply);
		n_ok += rc == Q_OK;
	}
	if (rc != Q_TEMPFAIL && x.remote.n > 0) {
		buf_reset(reply);
		rc = delivery_forward(d, env, content, &x.remote, reply);
		n_ok += rc == Q_OK;
	}
	if (rc == Q_TEMPFAIL)
		goto out;
	if (n_ok == 0) {
		if (reply->len == 0)
			buf_printf(reply, "5.1.1 alias %s leads to no valid mailbox", rcpt);
		rc = Q_PERMFAIL;
	} else if (x.local.n + x.remote.n > 1) {
		buf_reset(reply);
		buf_printf(reply,
			   "2.0.0 delivered to %zu mailbox(es), forwarded to %zu address(es)",
			   x.local.n, x.remote.n);
		rc = Q_OK;
	} else
		rc = Q_OK;
out:
	delivery_expansion_free(&x);
	free(user);
	free(domain);
	return rc;
}

static time_t delivery_backoff(int attempts)
{
	time_t delay = DELIVERY_BACKOFF_MIN;

	for (int i = 1; i < attempts && delay < DELIVERY_BACKOFF_MAX; i++)
		delay *= 2;
	return delay < DELIVERY_BACKOFF_MAX ? delay : DELIVERY_BACKOFF_MAX;
}

static void delivery_set_reply(struct q_rcpt *r, const char *text)
{
	free(r->last_reply);
	r->last_reply = xstrdup(text);
}

/* Stores the outcome of one attempt in r and reports failures. */
static void delivery_record(struct q_env *env, struct q_rcpt *r, int rc, const char *reply,
			    time_t now)
{
	const char *kv[] = {"qid", env->id, "rcpt", r->addr, "reply", reply, NULL};
	char when[64];

	delivery_set_reply(r, reply);
	if (rc == Q_OK) {
		r->state = RCPT_DELIVERED;
		return;
	}
	if (rc == Q_TEMPFAIL) {
		r->attempts++;
		r->next_attempt = now + delivery_backoff(r->attempts);
		clock_iso8601((int64_t)r->next_attempt * 1000000, when, sizeof(when));
		event_logkv(EV_LOCAL_DELIVERY_DEFERRED, kv,
			    "Delivery of message %s to %s failed temporarily (attempt %d, "
			    "next at %s): %s",
			    env->id, r->addr, r->attempts, when, reply);
		track(TRK_DEFERRED, env->id, env->message_id, env->sender, r->addr, reply);
		return;
	}
	r->state = RCPT_FAILED;
	r->attempts++;
	event_logkv(EV_LOCAL_DELIVERY_FAILED, kv, "Delivery of message %s to %s failed: %s",
		    env->id, r->addr, reply);
	track(TRK_BOUNCED, env->id, env->message_id, env->sender, r->addr, reply);
}

/* The RFC 3464 report for a final local outcome: a bounce, or "delivered"
 * for NOTIFY=SUCCESS. outbound_dsn decides from NOTIFY (and the null sender
 * rule) whether one is due; the report goes out like any other mail. */
static void delivery_report(struct delivery *d, const struct q_env *env, const struct buf *content,
			    const struct q_rcpt *r, int rc, const char *reply, time_t now)
{
	struct dsn_rcpt dr = {.addr = r->addr, .last_attempt = now};

	if (d->out == NULL || rc == Q_TEMPFAIL)
		return;
	dr.action = rc == Q_OK ? DSN_ACTION_DELIVERED : DSN_ACTION_FAILED;
	if (rc != Q_OK)
		dr.diagnostic = reply;
	outbound_dsn(d->out, env, content, &dr, 1);
}

/* Remote recipients wait for the outbound transport (issue 3). A message
 * run right after it was received (fresh) says so once in the tracking log;
 * nothing is written to the queue, so receiving stays one sync a message. */
static int delivery_note_remote(struct q_env *env, struct q_rcpt *r, int fresh)
{
	if (fresh && r->attempts == 0)
		track(TRK_QUEUED_OUTBOUND, env->id, env->message_id, env->sender, r->addr, NULL);
	return 0;
}

/* The via= link of addr's route, or NULL; local domains count only with a
 * mailbox route of their own (else they go to the Maildir, not via a link). */
static const char *delivery_via(const struct delivery *d, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const struct route *r;

	if (at == NULL || (config_is_local_domain(d->cfg, at + 1) &&
			   !(d->out && outbound_mailbox_route(d->out, addr))))
		return NULL;
	r = routes_lookup(d->cfg->routes, at + 1);
	return r && r->type != ROUTE_HOLD ? r->via : NULL;
}

/* 1 if this pass sends r whatever its retry time: a flush, or a link its
 * route goes via has just come up. */
static int delivery_forced(const struct delivery *d, const struct q_rcpt *r)
{
	const char *via;

	if (d->flushing)
		return 1;
	if (d->flushing_links.n == 0 || (via = delivery_via(d, r->addr)) == NULL)
		return 0;
	return strlist_has(&d->flushing_links, via);
}

static int delivery_due(const struct delivery *d, const struct q_rcpt *r, time_t now)
{
	return r->state == RCPT_PENDING && (r->next_attempt <= now || delivery_forced(d, r) ||
					    (d->out && outbound_released(d->out, r->addr)));
}

/* A remote recipient goes to the outbound transport, which takes it if its
 * route allows now; nothing is stored here. *blocked: it cannot go now (a
 * link down, held, no route) and waits for that to change or to expire. */
static int delivery_remote(struct delivery *d, struct q_env *env, size_t i, int fresh, int *blocked)
{
	delivery_note_remote(env, &env->rcpt[i], fresh);
	if (d->out && !outbound_offer(d->out, env, i, delivery_forced(d, &env->rcpt[i]))) {
		*blocked = 1;
		return outbound_expire_waiting(d->out, env, i);
	}
	return 0;
}

/* One attempt for one recipient if it is due. Returns 1 if r changed;
 * *blocked as for delivery_remote. */
static int delivery_rcpt(struct delivery *d, struct q_env *env, const struct buf *content, size_t i,
			 time_t now, int fresh, int *blocked)
{
	struct q_rcpt *r = &env->rcpt[i];
	struct buf reply = BUF_INIT;
	int rc;

	if (!delivery_due(d, r, now))
		return 0;
	switch (recipient_classify(d->cfg, r->addr)) {
	case RCLASS_REMOTE:
		if (d->out == NULL || !outbound_local_route(d->out, r->addr)) {
			buf_free(&reply);
			return delivery_remote(d, env, i, fresh, blocked);
		}
		rc = delivery_local(d, env, content, r->addr, &reply);
		break;
	case RCLASS_LOCAL:
		if (d->out && outbound_mailbox_route(d->out, r->addr)) {
			buf_free(&reply);
			return delivery_remote(d, env, i, fresh, blocked);
		}
		rc = delivery_local(d, env, content, r->addr, &reply);
		break;
	case RCLASS_UNKNOWN_LOCAL:
		rc = Q_PERMFAIL;
		buf_puts(&reply, "5.1.1 no such local mailbox");
		break;
	default:
		rc = Q_PERMFAIL;
		buf_puts(&reply, "5.1.3 bad recipient address syntax");
		break;
	}
	delivery_record(env, r, rc, buf_cstr(&reply), now);
	delivery_report(d, env, content, r, rc, buf_cstr(&reply), now);
	buf_free(&reply);
	return 1;
}

/* 1 if some due recipient is delivered here, so the content is needed. */
static int delivery_needs_content(struct delivery *d, const struct q_env *env, time_t now)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		const char *addr = env->rcpt[i].addr;
		enum rcpt_class cls;

		if (!delivery_due(d, &env->rcpt[i], now))
			continue;
		cls = recipient_classify(d->cfg, addr);
		if ((cls == RCLASS_LOCAL && !(d->out && outbound_mailbox_route(d->out, addr))) ||
		    (cls == RCLASS_REMOTE && d->out && outbound_local_route(d->out, addr)) ||
		    cls == RCLASS_UNKNOWN_LOCAL || cls == RCLASS_INVALID)
			return 1; /* the last two bounce here: the report quotes the text */
	}
	return 0;
}

static int delivery_all_done(const struct q_env *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_PENDING)
			return 0;
	return 1;
}

/* Loads qid: the envelope alone (no content read, no checksum) says what is
 * due; the whole file, checked, only when a local delivery is due. So a
 * fresh message or a queue of mail waiting for the link costs little, and
 * nothing is delivered from unchecked data: local deliveries use the full
 * load below, remote ones the full load of the outbound transport. */
static int delivery_load(struct delivery *d, const char *qid, struct q_env *env,
			 struct buf *content, time_t now)
{
	int rc = queue_load_envelope(d->q, qid, env);

	if (rc != Q_OK || !delivery_needs_content(d, env, now))
		return rc;
	q_env_free(env);
	memset(env, 0, sizeof(*env));
	return queue_load(d->q, qid, env, content);
}

/* When the queue run looks at env again (its due time in the index): a
 * deferred recipient at its next attempt; one that cannot go now (blocked)
 * when it expires, unless an event wakes it sooner (a link up, a release,
 * a flush, a reload); one handed to the outbound transport at the next
 * run, unless the connection's result (stored) reschedules it first. */
static time_t delivery_next_due(const struct delivery *d, const struct q_env *env,
				const unsigned char *blocked, time_t now)
{
	int prio = qindex_priority(queue_index(d->q), env->id);
	time_t later = now + (d->cfg->queue_run_interval > 0 ? d->cfg->queue_run_interval : 60);
	time_t expires = retry_expires_at(&d->policy, env->created,
					  prio < 0 ? PRIORITY_NORMAL : (enum retry_priority)prio);
	time_t next = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct q_rcpt *r = &env->rcpt[i];
		time_t t = blocked[i]		   ? (expires > now ? expires : later)
			   : r->next_attempt > now ? r->next_attempt
						   : later;
		if (r->state == RCPT_PENDING && (next == 0 || t < next))
			next = t;
	}
	return next ? next : later;
}

/* Delivers what is due in message qid; fresh: it was just received. The
 * message's due time in the index is set for its next look. */
static int delivery_run(struct delivery *d, const char *qid, int fresh)
{
	struct q_env env;
	struct buf content = BUF_INIT;
	time_t now = clock_now();
	unsigned char *blocked = NULL;
	int rc, changed = 0;

	memset(&env, 0, sizeof(env));
	rc = delivery_load(d, qid, &env, &content, now);
	if (rc != Q_OK) {
		/* A damaged file has been moved to corrupt/ by the queue. */
		log_warnx("delivery: cannot load message %s; skipped", qid);
		qindex_schedule(queue_index(d->q), qid, now + d->cfg->queue_run_interval);
		goto out;
	}
	blocked = xcalloc(env.nrcpt + 1, 1);
	for (size_t i = 0; i < env.nrcpt; i++) {
		int b = 0;
		changed |= delivery_rcpt(d, &env, &content, i, now, fresh, &b);
		blocked[i] = (unsigned char)b;
	}
	/* The deliveries above are durable before this update: a crash here
	 * repeats them at the next run (a duplicate), it cannot lose them. */
	if (changed && queue_update_later(d->q, &env) != 0) {
		event_log(EV_QUEUE_WRITE_FAILED,
			  "Cannot store the delivery state of message %s; it will be retried", qid);
		qindex_schedule(queue_index(d->q), qid, now + d->cfg->queue_run_interval);
		rc = Q_TEMPFAIL;
		goto out;
	}
	if (delivery_all_done(&env) && queue_remove(d->q, qid) != 0)
		log_warn("delivery: cannot remove finished message %s", qid);
	qindex_schedule(queue_index(d->q), qid, delivery_next_due(d, &env, blocked, now));
out:
	free(blocked);
	q_env_free(&env);
	buf_free(&content);
	return rc;
}

int delivery_run_one(struct delivery *d, const char *qid)
{
	return delivery_run(d, qid, 0);
}

static void delivery_schedule(struct delivery *d);

static int delivery_id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Begins a pass: a full one takes the links to flush and wakes their mail
 * (and all mail for a flush) in the index, so that it is due now; one
 * asked to discover lists queue/ for messages the index does not know
 * (committed by another process, e.g. sendmail). */
static void delivery_pass_begin(struct delivery *d)
{
	int full = d->scan_wanted;
	struct qindex *ix = queue_index(d->q);

	d->flushing = full && d->flush_wanted;
	if (full) {
		d->scan_wanted = 0;
		d->flush_wanted = 0;
		d->flushing_links = d->flush_links;
		memset(&d->flush_links, 0, sizeof(d->flush_links));
		d->pass_start = clock_now();
		if (d->flushing)
			qindex_wake_all(ix, d->pass_start);
		for (size_t i = 0; i < d->flushing_links.n; i++)
			qindex_wake_link(ix, d->flushing_links.v[i], d->pass_start);
		if (d->discover_wanted && (d->lister = queue_lister_new(d->q)) == NULL)
			log_warn("delivery: cannot list the queue");
		d->discover_wanted = 0;
		d->pass_pos = 0;
		d->in_pass = 1;
	}
	if (d->out)
		outbound_pass_begin(d->out, full);
}

/* The listing's slice: ids of queue/ the index does not know are kept for
 * the pass (oldest first when they are few enough to sort at once).
 * 1 while the listing goes on. */
static int delivery_discover_slice(struct delivery *d)
{
	struct strlist found = {0};
	int more = queue_lister_next(d->lister, &found, d->ev_run ? DELIVERY_SLICE_MS : 1 << 30, 0);

	for (size_t i = 0; i < found.n; i++)
		if (!qindex_has(queue_index(d->q), found.v[i]))
			strlist_add(&d->pass_ids, found.v[i]);
	strlist_free(&found);
	if (more)
		return 1;
	queue_lister_free(d->lister);
	d->lister = NULL;
	if (d->pass_ids.n > 1 && (d->ev_run == NULL || d->pass_ids.n <= DELIVERY_SORT_MAX))
		qsort(d->pass_ids.v, d->pass_ids.n, sizeof(*d->pass_ids.v), delivery_id_cmp);
	return 0;
}

/* The next message of the pass: one discovered, else the one due first in
 * the index if it was due when the pass began. 0 when none is left. */
static int delivery_pass_next(struct delivery *d, const struct strlist *fresh,
			      char id[QUEUE_ID_MAX])
{
	while (d->pass_pos < d->pass_ids.n) {
		const char *p = d->pass_ids.v[d->pass_pos++];
		if (!strlist_has(fresh, p) && !qindex_has(queue_index(d->q), p)) {
			snprintf(id, QUEUE_ID_MAX, "%s", p);
			return 1;
		}
	}
	return qindex_next_due(queue_index(d->q), d->pass_start, id);
}

/* Runs the pass's next messages until the slice's time is spent (all of
 * them without an event loop). 1 if some are left. Every message run gets
 * a due time after the pass began, so each comes up once. */
static int delivery_pass_slice(struct delivery *d, const struct strlist *fresh)
{
	long long deadline = clock_mono_ms() + DELIVERY_SLICE_MS;
	char id[QUEUE_ID_MAX];
	time_t due;

	if (d->lister && delivery_discover_slice(d))
		return 1;
	while (delivery_pass_next(d, fresh, id)) {
		if (!strlist_has(&d->kicked, id))
			delivery_run(d, id, 0);
		if (qindex_due_of(queue_index(d->q), id, &due) == 0 && due <= d->pass_start)
			qindex_schedule(queue_index(d->q), id,
					clock_now() + d->cfg->queue_run_interval);
		if (d->ev_run && clock_mono_ms() >= deadline)
			return 1;
	}
	return 0;
}

static void delivery_pass_end(struct delivery *d)
{
	d->in_pass = 0;
	strlist_free(&d->pass_ids);
	d->pass_pos = 0;
	d->flushing = 0;
	strlist_free(&d->flushing_links);
	if (d->out)
		outbound_pass_end(d->out);
}

/* Runs whatever was asked for since the last run: messages just kicked
 * first, then a slice of the full pass under way (a kicked message run
 * here is due later, so the pass does not run it again). */
static void delivery_on_run(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;
	struct strlist fresh = d->kicked;
	int more;

	memset(&d->kicked, 0, sizeof(d->kicked));
	if (!d->in_pass)
		delivery_pass_begin(d);
	for (size_t i = 0; i < fresh.n; i++)
		delivery_run(d, fresh.v[i], 1);
	more = d->in_pass && delivery_pass_slice(d, &fresh);
	strlist_free(&fresh);
	if (more) {
		struct timeval now = {0, 0};
		if (d->out)
			outbound_pass_slice(d->out);
		evtimer_add(d->ev_run, &now);
		return;
	}
	delivery_pass_end(d);
	if (d->scan_wanted) /* asked for during the pass: another one */
		delivery_schedule(d);
}

/* A 0-second timer rather than event_active: timers run after the I/O
 * events of the same loop pass, so the client's 250 is written first. */
static void delivery_schedule(struct delivery *d)
{
	struct timeval now = {0, 0};

	if (d->out)
		outbound_pass_scheduled(d->out);
	if (d->ev_run == NULL) /* no event loop (CLI, tests): run right away */
		delivery_on_run(-1, 0, d);
	else if (!evtimer_pending(d->ev_run, NULL))
		evtimer_add(d->ev_run, &now);
}

void delivery_kick(struct delivery *d, const char *qid)
{
	if (!queue_id_valid(qid))
		return;
	if (!strlist_has(&d->kicked, qid))
		strlist_add(&d->kicked, qid);
	delivery_schedule(d);
}

static int delivery_kick_id(const char *qid, void *arg)
{
	delivery_kick(arg, qid);
	return 0;
}

void delivery_scan(struct delivery *d)
{
	d->scan_wanted = 1;
	delivery_schedule(d);
}

void delivery_discover(struct delivery *d)
{
	d->discover_wanted = 1;
	delivery_scan(d);
}

void delivery_flush(struct delivery *d)
{
	d->flush_wanted = 1;
	delivery_scan(d);
}

static void delivery_on_dsn(const char *qid, void *arg)
{
	delivery_kick(arg, qid);
}

struct delivery *delivery_new(struct event_base *base, const struct config *cfg, struct queue *q,
			      const char *dir)
{
	struct delivery *d = xcalloc(1, sizeof(*d));

	d->base = base;
	d->cfg = cfg;
	d->q = q;
	d->dir = xstrdup(dir);
	d->local = &transport_maildir;
	d->dedup = dedup_open(dir, cfg->dedup_window);
	if (delivery_started == 0)
		delivery_started = clock_now();
	retry_policy_from_config(&d->policy, cfg);
	if (base != NULL) {
		d->ev_run = evtimer_new(base, delivery_on_run, d);
		d->out = outbound_new(base, cfg, q, delivery_on_dsn, d);
		outbound_set_dedup(d->out, d->dedup);
	}
	return d;
}

void delivery_reconfigure(struct delivery *d)
{
	retry_policy_from_config(&d->policy, d->cfg);
	if (d->out)
		outbound_reconfigure(d->out);
	/* Routes, holds and lifetimes may have changed: the next run looks
	 * at every message once (what waited may go now, or expire). */
	qindex_wake_all(queue_index(d->q), clock_now());
}

void delivery_free(struct delivery *d)
{
	if (d == NULL)
		return;
	outbound_free(d->out);
	dedup_close(d->dedup);
	if (d->ev_run)
		event_free(d->ev_run);
	strlist_free(&d->kicked);
	strlist_free(&d->flush_links);
	strlist_free(&d->flushing_links);
	strlist_free(&d->pass_ids);
	queue_lister_free(d->lister);
	free(d->dir);
	free(d);
}

/* Link hooks: the outbound transport keeps the links' state; routes with
 * via=NAME are offered only while NAME is up. */
void delivery_link_up(struct delivery *d, const char *name, long bps,
		      void (*on_idle)(const char *name, void *arg), void *arg)
{
	if (d->out == NULL) {
		if (on_idle)
			on_idle(name, arg);
		return;
	}
	outbound_link_up(d->out, name, bps, on_idle, arg);
	/* What waits for this link goes now, whatever its retry time (mail
	 * deferred when the last call dropped must not wait for a later one);
	 * other deferred mail keeps its retry time. */
	if (!strlist_has(&d->flush_links, name))
		strlist_add(&d->flush_links, name);
	delivery_scan(d);
}

void delivery_link_down(struct delivery *d, const char *name)
{
	if (d->out)
		outbound_link_down(d->out, name);
}

int delivery_link_busy(struct delivery *d, const char *name)
{
	/* A link just up is busy until the pass that sends its mail is over
	 * (passes run in slices): its mail may not have reached outbound yet. */
	if (strlist_has(&d->flush_links, name) ||
	    (d->in_pass && strlist_has(&d->flushing_links, name)))
		return 1;
	return d->out ? outbound_link_busy(d->out, name) : 0;
}

int delivery_release(struct delivery *d, const char *domain, int sub, const char *host, int port)
{
	if (d->out == NULL)
		return -1;
	outbound_release(d->out, domain, sub, host, port);
	/* The domain's messages go first, found in the index; the full pass
	 * that follows (it ends the release) finds them due later. */
	qindex_held_for(queue_index(d->q), domain, sub, delivery_kick_id, d);
	delivery_scan(d);
	return 0;
}

void delivery_link_stats(struct delivery *d, const char *name, unsigned *msgs_out,
			 unsigned long long *bytes_out)
{
	if (d->out) {
		outbound_link_stats(d->out, name, msgs_out, bytes_out);
		return;
	}
	*msgs_out = 0;
	*bytes_out = 0;
}

struct outbound *delivery_outbound(struct delivery *d)
{
	return d->out;
}
