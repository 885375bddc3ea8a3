/* String lists; each element is a private copy. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/strlist.h"
#include "lib/xmalloc.h"

void strlist_add(struct strlist *l, const char *s)
{
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = xstrdup(s);
}

void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int strlist_has(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

int strlist_has_nocase(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

void strlist_split(struct strlist *l, const char *s)
{
	while (*s) {
		size_t n;

		while (*s == ',' || *s == ' ' || *s == '\t')
			s++;
		n = strcspn(s, ", \t");
		if (n > 0) {
			char *item = xstrndup(s, n);
			strlist_add(l, item);
			free(item);
		}
		s += n;
	}
}

void strlist_copy(struct strlist *dst, const struct strlist *src)
{
	for (size_t i = 0; i < src->n; i++)
		strlist_add(dst, src->v[i]);
}
