/* The one duration grammar of the configuration (see duration.h). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "lib/duration.h"

static const struct {
	const char *name;
	long long ms;
} units[] = {{"ms", 1},	     {"s", 1000},      {"m", 60000},
	     {"min", 60000}, {"h", 3600000LL}, {"d", 86400000LL}};

long long duration_parse_ms(const char *s, long long max_ms)
{
	char *end;
	long long n, mult = -1;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno)
		return -1;
	if (*end == '\0')
		mult = 1000;
	for (size_t i = 0; mult < 0 && i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(end, units[i].name) == 0)
			mult = units[i].ms;
	if (mult < 0 || n > max_ms / mult)
		return -1;
	return n * mult;
}

long long duration_parse(const char *s, long long max)
{
	long long ms = duration_parse_ms(s, max > LLONG_MAX / 1000 ? LLONG_MAX : max * 1000);

	if (ms < 0 || ms % 1000 != 0)
		return -1;
	return ms / 1000;
}

void duration_format_ms(char *out, size_t len, long long ms)
{
	static const int order[] = {5, 4, 2, 1}; /* d, h, m, s */

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		long long u = units[order[i]].ms;
		if (ms != 0 && ms % u == 0) {
			snprintf(out, len, "%lld%s", ms / u, units[order[i]].name);
			return;
		}
	}
	snprintf(out, len, ms == 0 ? "0s" : "%lldms", ms);
}
