/* The hub role: which domains are held for their sites, and the ETRN
 * server command (RFC 1985) that releases them. The reply is decided here;
 * the delivery itself is outbound delivery to the site (delivery_release).
 * Invariant: ETRN answers at once (the RFC's asynchronous start), and only
 * an allowed client can make held mail leave, only to the site's address. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deliver/delivery.h"
#include "mail/policy.h"
#include "mail/event.h"
#include "hub/hub.h"
#include "mail/routes.h"
#include "lib/cidr.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "queue/qindex.h"

struct hub {
	const struct config *cfg;
	struct queue *q;
	struct delivery *d;
};

struct hub *hub_new(const struct config *cfg, struct queue *q, struct delivery *d)
{
	struct hub *h = xcalloc(1, sizeof(*h));

	h->cfg = cfg;
	h->q = q;
	h->d = d;
	return h;
}

void hub_free(struct hub *h)
{
	free(h);
}

/* 1 if the client may use ETRN: in etrn_clients, or authenticated. */
static int hub_allowed(const struct hub *h, const char *client, const char *user)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;

	if (user != NULL)
		return 1;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, client, &v4->sin_addr) == 1)
		v4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, client, &v6->sin6_addr) == 1)
		v6->sin6_family = AF_INET6;
	else
		return 0;
	return cidr_match_any(h->cfg->etrn_clients, h->cfg->n_etrn_clients, (struct sockaddr *)&ss);
}

/* 1 if the node names held mail: the domain itself, or for "@node" any
 * held domain below it. */
static int hub_node_held(const struct config *cfg, const char *node, int sub)
{
	if (policy_held(cfg, node))
		return 1;
	for (size_t i = 0; sub && i < cfg->hold_domains.n; i++)
		if (policy_domain_under(cfg->hold_domains.v[i], node, 1))
			return 1;
	return 0;
}

/* Where the node's mail goes: etrn_hosts, else the client's address. */
static void hub_destination(const struct hub *h, const char *node, const char *client, char **host,
			    int *port)
{
	for (size_t i = 0; i < h->cfg->etrn_hosts.n; i++) {
		char *domain, *hst;
		int p;
		if (policy_split_etrn_host(h->cfg->etrn_hosts.v[i], &domain, &hst, &p) < 0)
			continue;
		if (strcasecmp(domain, node) == 0) {
			free(domain);
			*host = hst;
			*port = p;
			return;
		}
		free(domain);
		free(hst);
	}
	*host = xstrdup(client);
	*port = h->cfg->etrn_default_port;
}

static void hub_refuse(const char *client, const char *arg, struct buf *reply, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void hub_refuse(const char *client, const char *arg, struct buf *reply, const char *fmt, ...)
{
	const char *kv[] = {"client", client, "domain", arg, NULL};
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(reply, fmt, ap);
	va_end(ap);
	event_logkv(EV_ETRN_REFUSED, kv, "ETRN %s from client %s refused: %s", arg, client,
		    buf_cstr(reply));
}

/* Releases the node's held mail to the site; the reply says what started. */
static void hub_release(struct hub *h, const char *client, const char *node, int sub,
			struct buf *reply)
{
	unsigned n = qindex_held_for(queue_index(h->q), node, sub, NULL, NULL);
	char *host = NULL, *dest;
	int port;

	if (n == 0) {
		buf_printf(reply, "251 OK, no messages waiting for node %s", node);
		return;
	}
	hub_destination(h, node, client, &host, &port);
	dest = xasprintf(strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	if (delivery_release(h->d, node, sub, host, port) < 0) {
		buf_printf(reply, "458 Unable to queue messages for node %s", node);
	} else {
		const char *kv[] = {"client", client, "domain", node, "destination", dest, NULL};
		event_logkv(EV_ETRN_RELEASED, kv,
			    "ETRN from client %s: %u held messages for %s%s are being sent to %s",
			    client, n, sub ? "@" : "", node, dest);
		buf_printf(reply, "250 OK, queuing for node %s started (%u messages, to %s)", node,
			   n, dest);
	}
	free(dest);
	free(host);
}

void hub_etrn(const char *client, const char *user, const char *arg, struct buf *reply, void *hp)
{
	struct hub *h = hp;
	int sub = arg[0] == '@';
	char *node;

	if (arg[0] == '\0') {
		buf_puts(reply, "501 Syntax: ETRN domain");
		return;
	}
	if (arg[0] == '#') {
		hub_refuse(client, arg, reply,
			   "458 Unable to queue messages for node %s: queue names are not "
			   "supported, only domains",
			   arg);
		return;
	}
	if (!policy_domain_ok(arg + sub, strlen(arg + sub))) {
		buf_printf(reply, "501 Syntax Error in Parameters: '%s' is not a domain", arg);
		return;
	}
	node = xstrdup(arg + sub);
	for (char *p = node; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!hub_allowed(h, client, user))
		hub_refuse(client, arg, reply,
			   "458 Unable to queue messages for node %s: this client may not use ETRN",
			   node);
	else if (!hub_node_held(h->cfg, node, sub))
		hub_refuse(client, arg, reply,
			   "459 Node %s not allowed: no mail is held for it here", node);
	else
		hub_release(h, client, node, sub, reply);
	free(node);
}
