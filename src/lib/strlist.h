/* A growable list of owned strings (config lists, recipients). */
#ifndef LIB_STRLIST_H
#define LIB_STRLIST_H
#include <stddef.h>

struct strlist {
	char **v;
	size_t n;
};

void strlist_add(struct strlist *l, const char *s);
void strlist_free(struct strlist *l);
int strlist_has(const struct strlist *l, const char *s);	/* exact */
int strlist_has_nocase(const struct strlist *l, const char *s); /* ASCII case-insensitive */
/* Splits "a, b ,c" on commas and/or whitespace into l (appends). */
void strlist_split(struct strlist *l, const char *s);
void strlist_copy(struct strlist *dst, const struct strlist *src);

#endif
