/* Policy lookups of the shared vocabulary: is a domain held here, may a user
 * claim a domain by ATRN, is a configured item well formed. Pure functions of
 * the loaded configuration, so every layer above (the SMTP server, delivery,
 * the hub, the branch) asks the same question the same way. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xmalloc.h"
#include "mail/policy.h"
#include "mail/recipient.h"
#include "mail/smtp_addr.h"
#include "mail/routes.h"

int policy_domain_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

int policy_hold_domain(const struct config *cfg, const char *domain)
{
	return strlist_has_nocase(&cfg->hold_domains, domain);
}

int policy_held(const struct config *cfg, const char *domain)
{
	const struct route *r;

	if (policy_hold_domain(cfg, domain))
		return 1;
	r = cfg->routes ? routes_lookup(cfg->routes, domain) : NULL;
	return r != NULL && r->type == ROUTE_HOLD;
}

int policy_domain_under(const char *domain, const char *node, int sub)
{
	size_t n = strlen(domain), k = strlen(node);

	if (strcasecmp(domain, node) == 0)
		return 1;
	return sub && n > k + 1 && domain[n - k - 1] == '.' &&
	       strcasecmp(domain + n - k, node) == 0;
}

int policy_hub_enabled(const struct config *cfg)
{
	for (size_t i = 0; cfg->routes && i < cfg->routes->n; i++)
		if (cfg->routes->v[i].type == ROUTE_HOLD)
			return 1;
	return cfg->hold_domains.n > 0;
}

/* "domain=host[:port]" into its parts (host and domain malloc'd). */
int policy_split_etrn_host(const char *item, char **domain, char **host, int *port)
{
	const char *eq = strchr(item, '='), *h, *colon;
	char *end;
	long p = 25;

	if (eq == NULL || !policy_domain_ok(item, (size_t)(eq - item)))
		return -1;
	h = eq + 1;
	colon = strrchr(h, ':');
	if (colon && strchr(h, ':') != colon)
		colon = NULL; /* a bare IPv6 address: no port */
	if (colon) {
		errno = 0;
		p = strtol(colon + 1, &end, 10);
		if (colon[1] == '\0' || *end || errno || p < 1 || p > 65535)
			return -1;
	}
	if ((colon ? (size_t)(colon - h) : strlen(h)) == 0)
		return -1;
	*domain = xstrndup(item, (size_t)(eq - item));
	*host = colon ? xstrndup(h, (size_t)(colon - h)) : xstrdup(h);
	*port = (int)p;
	return 0;
}

int policy_check_etrn_host(const char *item, struct buf *problem)
{
	char *domain, *host;
	int port;

	if (policy_split_etrn_host(item, &domain, &host, &port) < 0) {
		buf_printf(problem, "'%s' is not domain=host[:port]", item);
		return -1;
	}
	free(domain);
	free(host);
	return 0;
}

int policy_check_odmr_domain(const char *item, struct buf *problem)
{
	const char *eq = strchr(item, '=');

	if (eq == NULL || eq == item || !policy_domain_ok(eq + 1, strlen(eq + 1))) {
		buf_printf(problem, "'%s' is not user=domain", item);
		return -1;
	}
	return 0;
}

int policy_odmr_user_owns(const struct config *cfg, const char *user, const char *domain)
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

int policy_check_dns_server(const char *item, struct buf *problem)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char bin[16];
	const char *port = NULL, *end;
	size_t n;

	if (item[0] == '[') {
		end = strchr(item, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			goto bad;
		n = (size_t)(end - item - 1);
		if (n >= sizeof(host))
			goto bad;
		memcpy(host, item + 1, n);
		port = end[1] == ':' ? end + 2 : NULL;
	} else {
		end = strchr(item, ':');
		if (end && strchr(end + 1, ':')) /* bare IPv6 without a port */
			end = NULL;
		n = end ? (size_t)(end - item) : strlen(item);
		if (n >= sizeof(host))
			goto bad;
		memcpy(host, item, n);
		port = end ? end + 1 : NULL;
	}
	host[n] = '\0';
	if (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1)
		goto bad;
	if (port) {
		char *e;
		long p = strtol(port, &e, 10);
		if (*port == '\0' || *e != '\0' || p < 1 || p > 65535)
			goto bad;
	}
	return 0;
bad:
	buf_printf(problem, "'%s' is not ip[:port] ([ipv6]:port for IPv6 with a port)", item);
	return -1;
}

enum policy_rcpt policy_rcpt(const struct config *cfg, int may_relay, const struct smtp_path *p)
{
	int tricky = p->has_route || strpbrk(p->local, "%!@") != NULL;

	if (!may_relay && tricky)
		return POLICY_RCPT_RELAY_DENIED;
	if (!p->literal && config_is_local_domain(cfg, p->domain)) {
		switch (recipient_classify(cfg, p->mailbox)) {
		case RCLASS_LOCAL:
			return POLICY_RCPT_OK;
		case RCLASS_REMOTE:
			break;
		default:
			return POLICY_RCPT_UNKNOWN;
		}
	}
	/* hold_domains: accepted from anyone, as a backup MX would */
	if (may_relay || (!p->literal && policy_hold_domain(cfg, p->domain)))
		return POLICY_RCPT_OK;
	return POLICY_RCPT_RELAY_DENIED;
}
