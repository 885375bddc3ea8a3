/* Held-mail batches: what a hub (hub/odmr.c after ATRN, dialup/direct.c's
 * turn on the line) hands to the SMTP client engine, and how the peer's
 * replies change the queue. Invariant: a recipient changes state only on
 * the peer's final reply for it; the rest stays held. */
#include <stdlib.h>
#include <string.h>

#include "deliver/delivery.h"
#include "deliver/held.h"
#include "deliver/outbound.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "mail/event.h"
#include "smtp/dsn.h"

static void held_msg_free(struct held_msg *m)
{
	free(m->idx);
	q_env_free(&m->env);
	buf_free(&m->content);
}

int held_batch_load(struct held_batch *b, struct queue *q, const char *id, int with_content,
		    int (*want)(const struct q_rcpt *r, void *arg), void *arg)
{
	struct held_msg m;

	memset(&m, 0, sizeof(m));
	if ((with_content ? queue_load(q, id, &m.env, &m.content)
			  : queue_load_envelope(q, id, &m.env)) != Q_OK)
		goto skip;
	m.idx = xcalloc(m.env.nrcpt + 1, sizeof(size_t));
	for (size_t i = 0; i < m.env.nrcpt; i++)
		if (want(&m.env.rcpt[i], arg))
			m.idx[m.nidx++] = i;
	if (m.nidx == 0)
		goto skip;
	if (!with_content) {
		held_msg_free(&m);
		return 1;
	}
	b->m = xrealloc(b->m, (b->nm + 1) * sizeof(*b->m));
	b->m[b->nm++] = m;
	return 1;
skip:
	held_msg_free(&m);
	return 0;
}

void held_batch_jobs(struct held_batch *b)
{
	b->jobs = xcalloc(b->nm + 1, sizeof(*b->jobs));
	for (size_t i = 0; i < b->nm; i++) {
		b->jobs[i].env = &b->m[i].env;
		b->jobs[i].content = &b->m[i].content;
		b->jobs[i].rcpt_idx = b->m[i].idx;
		b->jobs[i].nrcpt_idx = b->m[i].nidx;
		b->jobs[i].user = &b->m[i];
	}
}

void held_batch_free(struct held_batch *b)
{
	for (size_t i = 0; i < b->nm; i++)
		held_msg_free(&b->m[i]);
	free(b->m);
	free(b->jobs);
	memset(b, 0, sizeof(*b));
}

static void held_rcpt_event(int id, const struct held_peer *p, const struct q_env *env,
			    const struct q_rcpt *r, const char *what)
{
	const char *reply = r->last_reply ? r->last_reply : "";
	const char *kv[] = {"qid", env->id, "rcpt",   r->addr, "reply",
			    reply, p->key,  p->value, NULL};

	event_logkv(id, kv, "Message %s to %s %s (%s): %s", env->id, r->addr, what, p->label,
		    reply);
}

/* One result into r; 1 if r failed for good. */
static int held_apply(struct held_peer *p, const struct q_env *env, struct q_rcpt *r,
		      const struct smtpc_rcpt_result *res)
{
	free(r->last_reply);
	r->last_reply = xstrdup(res->reply && *res->reply ? res->reply : "(no reply)");
	if (res->status == Q_OK) {
		r->state = RCPT_DELIVERED;
		p->ok++;
		held_rcpt_event(EV_OUTBOUND_DELIVERED, p, env, r, "delivered");
		track(TRK_SENT, env->id, env->message_id, env->sender, r->addr, r->last_reply);
		return 0;
	}
	r->attempts++;
	if (res->status == Q_PERMFAIL) {
		r->state = RCPT_FAILED;
		p->failed++;
		held_rcpt_event(EV_OUTBOUND_BOUNCED, p, env, r, "failed");
		track(TRK_BOUNCED, env->id, env->message_id, env->sender, r->addr, r->last_reply);
		return 1;
	}
	p->held++; /* stays queued for the next call / ATRN */
	if (p->log_deferred)
		held_rcpt_event(EV_OUTBOUND_DEFERRED, p, env, r, "deferred");
	return 0;
}

/* Queue write of the new state; the message goes when nothing is pending. */
static void held_save(const struct held_peer *p, struct queue *q, const struct q_env *env)
{
	int done = 1;

	for (size_t i = 0; i < env->nrcpt; i++)
		done &= env->rcpt[i].state != RCPT_PENDING;
	if (queue_update_later(q, env) != 0)
		event_log(EV_QUEUE_WRITE_FAILED,
			  "Cannot store the delivery state of message %s; it will be retried",
			  env->id);
	else if (done && queue_remove(q, env->id) != 0)
		log_warn("%s: cannot remove finished message %s", p->tag, env->id);
}

void held_store(struct held_peer *p, struct queue *q, struct delivery *d, struct held_msg *m,
		const struct smtpc_msg *sm)
{
	struct q_env env;
	struct dsn_rcpt *failed = xcalloc(m->nidx + 1, sizeof(*failed));
	size_t nfailed = 0;

	m->stored = 1;
	memset(&env, 0, sizeof(env));
	if (queue_load(q, m->env.id, &env, NULL) != Q_OK)
		goto out;
	for (size_t k = 0; k < m->nidx; k++) {
		struct q_rcpt *r = m->idx[k] < env.nrcpt ? &env.rcpt[m->idx[k]] : NULL;
		struct smtpc_rcpt_result tmp = {Q_TEMPFAIL, sm->reply};
		const struct smtpc_rcpt_result *res = k < sm->nres ? &sm->res[k] : &tmp;
		if (r == NULL || r->state != RCPT_PENDING)
			continue;
		if (held_apply(p, &env, r, res)) {
			failed[nfailed].addr = r->addr;
			failed[nfailed].action = DSN_ACTION_FAILED;
			failed[nfailed].remote_mta = p->remote_mta;
			failed[nfailed].diagnostic = r->last_reply;
			failed[nfailed++].last_attempt = clock_now();
		}
	}
	if (nfailed && d && delivery_outbound(d))
		outbound_dsn(delivery_outbound(d), &env, &m->content, failed, nfailed);
	held_save(p, q, &env);
out:
	free(failed);
	q_env_free(&env);
}
