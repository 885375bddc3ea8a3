/* DNS for outbound delivery: MX lookup with the A/AAAA fallback and the
 * RFC 5321 section 5.1 order, and host addresses, with c-ares on libevent.
 * Invariant: a lookup's callback runs exactly once, never from inside the
 * call that started it, and never after mx_cancel or mx_free. */
#ifndef DELIVER_MX_H
#define DELIVER_MX_H
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/strlist.h"

struct mx_addr {
	char *host; /* the MX host (or the host name asked for) */
	int pref;   /* MX preference; 0 for a host lookup or the implicit MX */
	char *addr; /* "192.0.2.1:25" or "[2001:db8::1]:25", for smtpc_connect */
};

struct mx_result {
	int status;	   /* Q_OK; Q_TEMPFAIL: DNS failure; Q_PERMFAIL: no such domain, null MX */
	const char *error; /* what went wrong ("" on Q_OK), with an enhanced status code */
	struct mx_addr *v; /* in the order to try */
	size_t n;
};

typedef void (*mx_cb)(const struct mx_result *r, void *arg);

struct mx;
struct mx_query;

/* servers: "ip[:port]" items (the dns_servers setting); empty: the system's
 * resolver configuration. NULL with err on failure. */
struct mx *mx_new(struct event_base *base, const struct strlist *servers, struct buf *err);
/* Frees the resolver; callbacks of lookups still running are not called.
 * Allowed from inside a lookup's callback. */
void mx_free(struct mx *m);
/* The hosts to try for mail to domain: its MX hosts by preference (equal
 * preferences in random order), each with its A/AAAA addresses; without MX
 * records the domain's own addresses. */
struct mx_query *mx_lookup(struct mx *m, const char *domain, int port, mx_cb cb, void *arg);
/* The addresses of one host (a numeric address needs no DNS). */
struct mx_query *mx_host(struct mx *m, const char *host, int port, mx_cb cb, void *arg);
/* mx_host for a thread without a loop (the session's link check, which
 * runs in the dial worker): runs the lookup on a private event base and
 * returns when it is answered, or after timeout_ms (Q_TEMPFAIL). The
 * addresses ("ip:port", as mx_addr.addr) are added to out; Q_OK, or
 * Q_TEMPFAIL/Q_PERMFAIL with the reason in err. servers as for mx_new. */
int mx_host_wait(const struct strlist *servers, const char *host, int port, int timeout_ms,
		 struct strlist *out, struct buf *err);
/* The callback of q will not be called; q is freed by the resolver. */
void mx_cancel(struct mx_query *q);

/* ---- exposed for unit tests ---- */
struct mx_host_pref {
	char *name;
	int pref;
};
/* Sorts by preference; equal preferences are shuffled with *rnd (a
 * xorshift state, updated). */
void mx_order(struct mx_host_pref *v, size_t n, uint64_t *rnd);
/* "ip:port" as smtpc_connect takes it: "[v6]:port" for IPv6. */
char *mx_hostport(const char *ip, int port);

#endif
