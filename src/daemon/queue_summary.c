/* The queue counted by state and route (queue_summary.h). Today a scan of
 * every envelope, as `dialmail status` does; reads only, never writes. */
#include <stdio.h>
#include <string.h>

#include "daemon/queue_summary.h"
#include "mail/config.h"
#include "mail/policy.h"
#include "mail/routes.h"
#include "queue/queue.h"

struct qs_scan {
	struct queue *q;
	const struct config *cfg;
	struct queue_summary *out;
};

const char *queue_summary_state_name(enum qs_state s)
{
	static const char *const names[QS_N] = {"new", "deferred", "link", "held"};

	return s < QS_N ? names[s] : "unknown";
}

static const char *qs_route_type(enum route_type t)
{
	switch (t) {
	case ROUTE_SMARTHOST:
		return "smarthost";
	case ROUTE_MX:
		return "mx";
	case ROUTE_LOCAL:
		return "local";
	case ROUTE_HOLD:
		return "hold";
	case ROUTE_LMTP:
		return "lmtp";
	case ROUTE_SMTP:
		return "smtp";
	}
	return "other";
}

/* The route name of a recipient's domain and what it says of the state. */
static const char *qs_route(const struct config *cfg, const char *domain, enum qs_state *st)
{
	const struct route *r;

	if (policy_held(cfg, domain)) {
		*st = QS_HELD;
		return "hold";
	}
	if (config_is_local_domain(cfg, domain))
		return "local";
	r = routes_lookup(cfg->routes, domain);
	if (r == NULL)
		return "none";
	if (r->via) {
		*st = QS_LINK;
		return r->via;
	}
	return qs_route_type(r->type);
}

static void qs_add_route(struct queue_summary *o, const char *name)
{
	unsigned i;

	for (i = 0; i < o->n_routes; i++)
		if (strcmp(o->route[i].name, name) == 0)
			break;
	if (i == o->n_routes) {
		if (o->n_routes == QS_ROUTES_MAX)
			name = "other";
		snprintf(o->route[i].name, sizeof(o->route[i].name), "%s", name);
		if (i == o->n_routes)
			o->n_routes++;
	}
	o->route[i].messages++;
}

/* One message: its state is the strongest of its pending recipients', its
 * route that of the first pending recipient. */
static void qs_count(struct queue_summary *o, const struct config *cfg, const struct q_env *env)
{
	enum qs_state st = QS_NEW;
	const char *route = NULL;

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct q_rcpt *r = &env->rcpt[i];
		const char *at = strrchr(r->addr, '@');
		enum qs_state rs = r->attempts > 0 ? QS_DEFERRED : QS_NEW;
		const char *name;

		if (r->state != RCPT_PENDING)
			continue;
		name = qs_route(cfg, at ? at + 1 : "", &rs);
		route = route ? route : name;
		st = rs > st ? rs : st;
	}
	o->by_state[st]++;
	qs_add_route(o, route ? route : "none");
	if (o->oldest == 0 || env->created < o->oldest)
		o->oldest = env->created;
}

static int qs_one(const char *id, void *arg)
{
	struct qs_scan *s = arg;
	struct q_env env;

	memset(&env, 0, sizeof(env));
	if (queue_load_envelope(s->q, id, &env) == Q_OK) {
		s->out->messages++;
		qs_count(s->out, s->cfg, &env);
	}
	q_env_free(&env);
	return 0;
}

void queue_summary_take(struct queue *q, const struct config *cfg, struct queue_summary *out)
{
	struct qs_scan s = {q, cfg, out};

	memset(out, 0, sizeof(*out));
	if (q)
		queue_scan(q, qs_one, &s);
}
