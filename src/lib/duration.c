/* The one duration grammar of the configuration (see duration.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

#include "lib/duration.h"

long long duration_parse(const char *s, long long max)
{
	static const struct {
		char c;
		long long mult;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	char *end;
	long long n;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || n > max)
		return -1;
	if (*end == '\0')
		return n;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (tolower((unsigned char)*end) == units[i].c && end[1] == '\0')
			return n * units[i].mult;
	return -1;
}
