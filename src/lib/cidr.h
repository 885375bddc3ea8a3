/* IPv4/IPv6 network prefixes ("192.0.2.0/24", "::1") and matching. */
#ifndef LIB_CIDR_H
#define LIB_CIDR_H
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int prefix;
};

int cidr_parse(const char *s, struct cidr *out); /* 0 or -1 */
/* 1 if sa (AF_INET, AF_INET6, v4-mapped v6) is inside c. */
int cidr_match(const struct cidr *c, const struct sockaddr *sa);
int cidr_match_any(const struct cidr *list, size_t n, const struct sockaddr *sa);
/* Numeric host text of sa, no port ("127.0.0.1", "::1"). */
void sockaddr_host(const struct sockaddr *sa, char *out, size_t outlen);

#endif
