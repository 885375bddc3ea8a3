/* Certificate pins: "sha256:AB:cd:..." or bare hex into one canonical form. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/fingerprint.h"
#include "lib/xmalloc.h"

char *fingerprint_parse(const char *s)
{
	char *out = xmalloc(strlen(s) + 1);
	size_t n = 0;

	if (strncasecmp(s, "sha256:", 7) == 0)
		s += 7;
	for (; *s; s++) {
		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s) || n == 64)
			break;
		out[n++] = (char)tolower((unsigned char)*s);
	}
	out[n] = '\0';
	if (*s == '\0' && n == 64)
		return out;
	free(out);
	return NULL;
}
