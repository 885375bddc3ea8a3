/* The settings table form shared by every part of the configuration file:
 * typed rows over any struct (see settings.c). */
#ifndef MAIL_SETTINGS_H
#define MAIL_SETTINGS_H
#include <stddef.h>
#include <stdio.h>

#include "lib/buf.h"

/* Every setting of the file, top level or in a section, is one row: name,
 * type, default, bounds, help. The parser, the defaults, check-config and
 * show-config all read the row, so a key cannot be parsed one way and shown
 * another. T_DURATION fields are int seconds (the grammar of
 * lib/duration.h), T_SIZE uint64_t bytes, T_INT/T_BOOL/T_LEVEL int,
 * T_STRING char *, T_LIST struct strlist, T_CIDRS struct cidr * with a
 * size_t count at off_n, T_MS int milliseconds (same grammar), T_ENUM int
 * (the index in names). T_CUSTOM: the row's own parse/format/release. */
enum setting_type {
	T_STRING,
	T_INT,
	T_SIZE,
	T_DURATION,
	T_BOOL,
	T_LIST,
	T_CIDRS,
	T_LEVEL,
	T_MS,
	T_ENUM,
	T_CUSTOM
};

#define F_LOWER 1     /* list items are lower-cased (domains, local parts) */
#define F_OWN	0x100 /* the first flag bit a table owner may use for itself */

struct setting {
	const char *name;
	enum setting_type type;
	const char *def;	  /* default, in the syntax of the file; NULL: the field
				     stays zero (a T_STRING NULL means "not set") */
	long long min, max;	  /* value bounds; for lists, the number of items (max 0: any) */
	size_t off;		  /* field in the struct the table describes */
	size_t off_n;		  /* T_CIDRS: the count that goes with the array */
	int flags;		  /* F_LOWER; bits from F_OWN up are the table owner's */
	const char *const *names; /* T_ENUM: the values, NULL-terminated */
	/* Extra check of a string value or of each list item; NULL if none. */
	int (*check)(const char *item, struct buf *problem);
	const char *help;
	/* T_CUSTOM only: parse v into base (0, or -1 with problem filled),
	 * append the value as the file writes it, free what parse allocated. */
	int (*parse)(const struct setting *s, void *base, const char *v, struct buf *problem);
	void (*format)(const struct setting *s, const void *base, struct buf *out);
	void (*release)(const struct setting *s, void *base);
	/* T_CUSTOM only, optional: exchange the value (and what it owns)
	 * between two structs (settings_swap; a reload keeping a value). */
	void (*swap)(const struct setting *s, void *a, void *b);
};

/* A table of rows over one struct: the top level (struct config) or a
 * section's struct (section names it, "[session]", for messages). */
struct settings_table {
	const char *section;
	const struct setting *v;
	size_t n;
};

/* Every field of base set to its row's default (a bad default is our bug:
 * panic). */
void settings_defaults(const struct settings_table *t, void *base);
/* One value into row s's field of base: 0, or -1 with problem filled. */
int settings_parse_value(const struct setting *s, void *base, const char *value,
			 struct buf *problem);
/* The row named key, or NULL. */
const struct setting *settings_find(const struct settings_table *t, const char *key);
/* One "key = value" line into base: 1 if key is not a row of t, 0 when
 * parsed, -1 with problem filled ("set twice in [section]" when given, an
 * array of t->n flags, says the key was seen before). */
int settings_parse(const struct settings_table *t, void *base, unsigned char *given,
		   const char *key, const char *value, struct buf *problem);
/* The value of row s in base as the file writes it. */
void settings_format(const struct setting *s, const void *base, struct buf *out);
/* "name = value" lines for every row, in table order (show-config). */
void settings_show(const struct settings_table *t, const void *base, FILE *out);
/* Frees what the rows own in base. */
void settings_release(const struct settings_table *t, void *base);
/* Exchanges row s's value (and what it owns) between two structs of the
 * table's type; -1 for a T_CUSTOM row without a swap hook. */
int settings_swap(const struct setting *s, void *a, void *b);
/* Appends the row names, ", " between them (and before them if out is not
 * empty): for "unknown setting (a, b, c)" messages. */
void settings_names(const struct settings_table *t, struct buf *out);

#endif
