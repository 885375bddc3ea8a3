/* DNS for outbound delivery with c-ares on libevent: MX hosts in RFC 5321
 * section 5.1 order with their addresses, or a host's addresses. Invariant:
 * results reach the caller from a zero-delay timer, so a callback never runs
 * inside mx_lookup/mx_host, and a cancelled query never calls back. */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>

#include "deliver/mx.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"

#define MX_TIMEOUT_MS 2000 /* per try and server */
#define MX_TRIES      2
#define MX_MAX_HOSTS  10 /* MX hosts used, by preference */
#define MX_MAX_ADDRS  4	 /* addresses used per host */

struct mx_sock {
	ares_socket_t fd;
	struct event *ev;
};

struct mx {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct mx_sock *socks;
	size_t nsocks;
	struct mx_query *queries; /* every query not yet freed */
	uint64_t rnd;
	int destroying;
};

struct mx_hostq {
	char *name;
	int pref;
	struct strlist addrs; /* "ip:port" */
	int status;	      /* ARES_SUCCESS or the c-ares error */
};

struct mx_query {
	struct mx *m;
	mx_cb cb;
	void *arg;
	char *domain;
	int port;
	int cancelled;
	int outstanding; /* c-ares requests still running */
	struct mx_hostq *hosts;
	size_t nhosts;
	int status;
	struct buf error;
	struct event *fire;
	struct mx_query *next;
};

static void mx_arm_timer(struct mx *m)
{
	struct timeval tv, *t;

	if (m->destroying)
		return;
	t = ares_timeout(m->channel, NULL, &tv);
	if (t)
		evtimer_add(m->timer, t);
	else
		evtimer_del(m->timer);
}

static void mx_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct mx *m = arg;

	ares_process_fd(m->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	mx_arm_timer(m);
}

static void mx_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct mx *m = arg;

	ares_process_fd(m->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	mx_arm_timer(m);
}

/* c-ares tells which sockets to watch: one persistent event per socket. */
static void mx_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct mx *m = data;
	size_t i;

	for (i = 0; i < m->nsocks && m->socks[i].fd != fd; i++)
		;
	if (i < m->nsocks) {
		event_free(m->socks[i].ev);
		if (!readable && !writable) {
			m->socks[i] = m->socks[--m->nsocks];
			return;
		}
	} else {
		if (!readable && !writable)
			return;
		m->socks = xrealloc(m->socks, (m->nsocks + 1) * sizeof(*m->socks));
		m->socks[m->nsocks++].fd = fd;
	}
	m->socks[i].ev = event_new(
	    m->base, fd, EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0),
	    mx_on_sock, m);
	event_add(m->socks[i].ev, NULL);
}

static void mx_lib_init(void)
{
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		log_warnx("c-ares: library initialisation failed");
}

struct mx *mx_new(struct event_base *base, const struct strlist *servers, struct buf *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT; /* worker threads resolve too */
	struct ares_options opt;
	struct mx *m;
	struct buf csv = BUF_INIT;
	int rc;

	pthread_once(&once, mx_lib_init);
	m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->rnd = (uint64_t)clock_usec() | 1;
	memset(&opt, 0, sizeof(opt));
	opt.sock_state_cb = mx_sock_state;
	opt.sock_state_cb_data = m;
	opt.timeout = MX_TIMEOUT_MS;
	opt.tries = MX_TRIES;
	rc = ares_init_options(&m->channel, &opt,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		buf_printf(err, "c-ares: %s", ares_strerror(rc));
		free(m);
		return NULL;
	}
	for (size_t i = 0; servers && i < servers->n; i++)
		buf_printf(&csv, "%s%s", i ? "," : "", servers->v[i]);
	if (csv.len &&
	    (rc = ares_set_servers_ports_csv(m->channel, buf_cstr(&csv))) != ARES_SUCCESS) {
		buf_printf(err, "c-ares: dns_servers %s: %s", buf_cstr(&csv), ares_strerror(rc));
		buf_free(&csv);
		ares_destroy(m->channel);
		free(m);
		return NULL;
	}
	buf_free(&csv);
	m->timer = evtimer_new(base, mx_on_timer, m);
	return m;
}

/* Takes q off its resolver's list (mx_free no longer frees it). */
static void mx_query_unlink(struct mx_query *q)
{
	struct mx_query **pp;

	for (pp = &q->m->queries; *pp && *pp != q; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = q->next;
}

/* Frees an unlinked query; touches nothing of the resolver. */
static void mx_query_release(struct mx_query *q)
{
	for (size_t i = 0; i < q->nhosts; i++) {
		free(q->hosts[i].name);
		strlist_free(&q->hosts[i].addrs);
	}
	free(q->hosts);
	free(q->domain);
	buf_free(&q->error);
	if (q->fire)
		event_free(q->fire);
	free(q);
}

static void mx_query_free(struct mx_query *q)
{
	mx_query_unlink(q);
	mx_query_release(q);
}

void mx_free(struct mx *m)
{
	if (m == NULL)
		return;
	m->destroying = 1;
	ares_destroy(m->channel); /* runs pending callbacks with ARES_EDESTRUCTION */
	while (m->queries)
		mx_query_free(m->queries);
	for (size_t i = 0; i < m->nsocks; i++)
		event_free(m->socks[i].ev);
	free(m->socks);
	if (m->timer)
		event_free(m->timer);
	free(m);
}

void mx_cancel(struct mx_query *q)
{
	if (q)
		q->cancelled = 1;
}

static uint64_t mx_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

void mx_order(struct mx_host_pref *v, size_t n, uint64_t *rnd)
{
	/* Shuffle first, then a stable insertion sort by preference: equal
	 * preferences keep the random order (RFC 5321 5.1). */
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(mx_rand(rnd) % i);
		struct mx_host_pref t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
	for (size_t i = 1; i < n; i++) {
		struct mx_host_pref t = v[i];
		size_t j = i;
		for (; j > 0 && v[j - 1].pref > t.pref; j--)
			v[j] = v[j - 1];
		v[j] = t;
	}
}

char *mx_hostport(const char *ip, int port)
{
	return strchr(ip, ':') ? xasprintf("[%s]:%d", ip, port) : xasprintf("%s:%d", ip, port);
}

/* Calls back (unless cancelled) and frees the query. The query leaves the
 * resolver first, so the callback may mx_free the resolver. */
static void mx_on_fire(evutil_socket_t fd, short what, void *arg)
{
	struct mx_query *q = arg;
	struct mx_result r = {.status = q->status, .error = buf_cstr(&q->error)};
	size_t cap = 0;

	for (size_t i = 0; q->status == Q_OK && i < q->nhosts; i++)
		cap += q->hosts[i].addrs.n;
	r.v = xcalloc(cap + 1, sizeof(*r.v));
	for (size_t i = 0; q->status == Q_OK && i < q->nhosts; i++)
		for (size_t k = 0; k < q->hosts[i].addrs.n; k++) {
			r.v[r.n].host = q->hosts[i].name;
			r.v[r.n].pref = q->hosts[i].pref;
			r.v[r.n++].addr = q->hosts[i].addrs.v[k];
		}
	mx_query_unlink(q);
	if (!q->cancelled)
		q->cb(&r, q->arg);
	free(r.v);
	mx_query_release(q);
}

/* All requests are done: decides the outcome, then calls back from a timer. */
static void mx_finish(struct mx_query *q)
{
	struct timeval now = {0, 0};
	size_t naddr = 0;

	if (q->m->destroying)
		return;
	if (q->status == Q_OK) {
		for (size_t i = 0; i < q->nhosts; i++)
			naddr += q->hosts[i].addrs.n;
		if (naddr == 0) {
			q->status = Q_TEMPFAIL;
			buf_printf(&q->error, "4.4.3 no address found for %s%s", q->domain,
				   q->nhosts > 1 ? " or any of its MX hosts" : "");
			for (size_t i = 0; i < q->nhosts; i++)
				buf_printf(&q->error, "%s%s: %s", i ? "; " : " (", q->hosts[i].name,
					   ares_strerror(q->hosts[i].status));
			if (q->nhosts)
				buf_puts(&q->error, ")");
		}
	}
	q->fire = evtimer_new(q->m->base, mx_on_fire, q);
	evtimer_add(q->fire, &now);
}

/* One address request: which host of which query it is for. */
struct mx_req {
	struct mx_query *q;
	size_t host;
};

static void mx_on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct mx_req *rq = arg;
	struct mx_query *q = rq->q;
	struct mx_hostq *h = &q->hosts[rq->host];

	free(rq);
	h->status = status;
	for (struct ares_addrinfo_node *n = ai ? ai->nodes : NULL; n; n = n->ai_next) {
		char ip[INET6_ADDRSTRLEN];
		const void *a = n->ai_family == AF_INET6
				    ? (const void *)&((struct sockaddr_in6 *)n->ai_addr)->sin6_addr
				    : (const void *)&((struct sockaddr_in *)n->ai_addr)->sin_addr;
		char *hp;

		if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
		    inet_ntop(n->ai_family, a, ip, sizeof(ip)) == NULL ||
		    h->addrs.n >= MX_MAX_ADDRS)
			continue;
		hp = mx_hostport(ip, q->port);
		if (!strlist_has(&h->addrs, hp))
			strlist_add(&h->addrs, hp);
		free(hp);
	}
	if (ai)
		ares_freeaddrinfo(ai);
	if (--q->outstanding == 0)
		mx_finish(q);
}

/* Starts the address requests for every host of q. */
static void mx_resolve_hosts(struct mx_query *q)
{
	struct ares_addrinfo_hints hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = ARES_AI_NOSORT;
	q->outstanding = (int)q->nhosts;
	for (size_t i = 0; i < q->nhosts; i++) {
		struct mx_req *rq = xmalloc(sizeof(*rq));
		rq->q = q;
		rq->host = i;
		ares_getaddrinfo(q->m->channel, q->hosts[i].name, NULL, &hints, mx_on_addrinfo, rq);
	}
	mx_arm_timer(q->m);
}

static void mx_add_host(struct mx_query *q, const char *name, int pref)
{
	q->hosts = xrealloc(q->hosts, (q->nhosts + 1) * sizeof(*q->hosts));
	memset(&q->hosts[q->nhosts], 0, sizeof(q->hosts[0]));
	q->hosts[q->nhosts].name = xstrdup(name);
	q->hosts[q->nhosts++].pref = pref;
}

/* The MX answer: hosts in order, or the implicit MX, or a failure. */
static void mx_on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mx_query *q = arg;
	struct ares_mx_reply *mx = NULL;
	struct mx_host_pref v[MX_MAX_HOSTS];
	size_t n = 0;

	if (q->m->destroying)
		return;
	if (status == ARES_SUCCESS &&
	    (status = ares_parse_mx_reply(abuf, alen, &mx)) == ARES_SUCCESS) {
		for (struct ares_mx_reply *r = mx; r && n < MX_MAX_HOSTS; r = r->next) {
			v[n].name = r->host;
			v[n++].pref = r->priority;
		}
	}
	if (status == ARES_SUCCESS && n == 1 && (v[0].name[0] == '\0' || !strcmp(v[0].name, "."))) {
		q->status = Q_PERMFAIL;
		buf_printf(&q->error, "5.1.10 %s accepts no mail (null MX)", q->domain);
	} else if (status == ARES_SUCCESS && n > 0) {
		mx_order(v, n, &q->m->rnd);
		for (size_t i = 0; i < n; i++)
			mx_add_host(q, v[i].name, v[i].pref);
	} else if (status == ARES_SUCCESS || status == ARES_ENODATA) {
		mx_add_host(q, q->domain, 0); /* no MX: the implicit MX (RFC 5321 5.1) */
	} else if (status == ARES_ENOTFOUND) {
		q->status = Q_PERMFAIL;
		buf_printf(&q->error, "5.1.2 domain %s not found in DNS", q->domain);
	} else {
		q->status = Q_TEMPFAIL;
		buf_printf(&q->error, "4.4.3 MX lookup for %s failed: %s", q->domain,
			   ares_strerror(status));
	}
	if (mx)
		ares_free_data(mx);
	if (q->status == Q_OK)
		mx_resolve_hosts(q);
	else
		mx_finish(q);
}

static struct mx_query *mx_query_new(struct mx *m, const char *domain, int port, mx_cb cb,
				     void *arg)
{
	struct mx_query *q = xcalloc(1, sizeof(*q));

	q->m = m;
	q->cb = cb;
	q->arg = arg;
	q->domain = xstrdup(domain);
	q->port = port;
	q->status = Q_OK;
	q->next = m->queries;
	m->queries = q;
	return q;
}

struct mx_query *mx_lookup(struct mx *m, const char *domain, int port, mx_cb cb, void *arg)
{
	struct mx_query *q = mx_query_new(m, domain, port, cb, arg);

	ares_query(m->channel, domain, 1 /* C_IN */, 15 /* T_MX */, mx_on_mx, q);
	mx_arm_timer(m);
	return q;
}

struct mx_query *mx_host(struct mx *m, const char *host, int port, mx_cb cb, void *arg)
{
	struct mx_query *q = mx_query_new(m, host, port, cb, arg);
	unsigned char bin[16];

	mx_add_host(q, host, 0);
	if (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1) {
		char *hp = mx_hostport(host, port);
		strlist_add(&q->hosts[0].addrs, hp);
		free(hp);
		mx_finish(q);
	} else
		mx_resolve_hosts(q);
	return q;
}

/* --- the blocking form, for worker threads ------------------------------------ */

struct mx_wait {
	struct event_base *base;
	struct strlist *out;
	struct buf *err;
	int status;
	int answered;
};

static void mx_wait_done(const struct mx_result *r, void *arg)
{
	struct mx_wait *w = arg;

	w->status = r->status;
	w->answered = 1;
	for (size_t i = 0; i < r->n; i++)
		strlist_add(w->out, r->v[i].addr);
	if (r->status != Q_OK)
		buf_puts(w->err, r->error);
	event_base_loopbreak(w->base);
}

int mx_host_wait(const struct strlist *servers, const char *host, int port, int timeout_ms,
		 struct strlist *out, struct buf *err)
{
	struct mx_wait w = {event_base_new(), out, err, Q_TEMPFAIL, 0};
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	struct mx *m = w.base ? mx_new(w.base, servers, err) : NULL;

	if (m == NULL) {
		if (w.base == NULL)
			buf_puts(err, "cannot create an event base");
		else
			event_base_free(w.base);
		return Q_TEMPFAIL;
	}
	mx_host(m, host, port, mx_wait_done, &w);
	event_base_loopexit(w.base, &tv);
	event_base_dispatch(w.base);
	if (!w.answered)
		buf_printf(err, "no answer from DNS within %d ms", timeout_ms);
	mx_free(m); /* a lookup still running is cancelled */
	event_base_free(w.base);
	return w.status;
}
