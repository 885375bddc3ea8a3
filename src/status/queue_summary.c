/* The queue counted by state and route (queue_summary.h), from the queue's
 * index in memory: no file is read, whatever the queue's size. */
#include <stdio.h>
#include <string.h>

#include "status/queue_summary.h"
#include "mail/config.h"
#include "mail/policy.h"
#include "mail/routes.h"
#include "queue/qindex.h"
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

/* One message of the index: held, waiting for a link, deferred or new,
 * its route that of one of its pending recipients' domains. */
static void qs_one(const struct qindex_entry *e, void *arg)
{
	struct qs_scan *s = arg;
	struct queue_summary *o = s->out;
	enum qs_state st = e->tried ? QS_DEFERRED : QS_NEW;
	const char *route = e->domain ? qs_route(s->cfg, e->domain, &st) : "none";

	if (e->held) {
		st = QS_HELD;
		route = "hold";
	}
	o->messages++;
	o->by_state[st]++;
	qs_add_route(o, route);
	if (o->oldest == 0 || e->created < o->oldest)
		o->oldest = e->created;
}

void queue_summary_take(struct queue *q, const struct config *cfg, struct queue_summary *out)
{
	struct qs_scan s = {q, cfg, out};

	memset(out, 0, sizeof(*out));
	if (q)
		qindex_each(queue_index(q), qs_one, &s);
}
