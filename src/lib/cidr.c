/* Prefix parsing and matching; v4-mapped IPv6 clients match IPv4 networks. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cidr.h"

int cidr_parse(const char *s, struct cidr *out)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	int max;

	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else
		return -1;
	out->prefix = max;
	if (slash) {
		char *end;
		long p = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || p < 0 || p > max)
			return -1;
		out->prefix = (int)p;
	}
	return 0;
}

static int prefix_eq(const uint8_t *a, const uint8_t *b, int bits)
{
	int bytes = bits / 8, rem = bits % 8;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return 0;
	if (rem == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rem));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

int cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return c->family == AF_INET &&
		       prefix_eq(c->addr, (const uint8_t *)&in->sin_addr, c->prefix);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *a = in6->sin6_addr.s6_addr;
		if (c->family == AF_INET6)
			return prefix_eq(c->addr, a, c->prefix);
		if (memcmp(a, mapped, 12) == 0)
			return prefix_eq(c->addr, a + 12, c->prefix);
	}
	return 0;
}

int cidr_match_any(const struct cidr *list, size_t n, const struct sockaddr *sa)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_match(&list[i], sa))
			return 1;
	return 0;
}

void sockaddr_host(const struct sockaddr *sa, char *out, size_t outlen)
{
	const void *a = NULL;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (a == NULL || inet_ntop(sa->sa_family, a, out, (socklen_t)outlen) == NULL)
		snprintf(out, outlen, "unknown");
}
