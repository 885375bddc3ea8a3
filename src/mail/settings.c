/* The settings table form: typed rows (name, type, default, bounds, check,
 * help) over any struct, and the parse / format / release of each type.
 * The top level (config.c) and the sections of higher layers ([session],
 * the retrieval methods) declare their keys as rows of this form, so
 * defaults, parsing, check-config and show-config read the same row.
 * Invariant: a row's parse either sets its field or leaves it untouched and
 * says why in problem. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/cidr.h"
#include "lib/duration.h"
#include "lib/log.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"
#include "mail/event.h"
#include "mail/settings.h"

#define KB  1024LL
#define MB  (1024LL * KB)
#define GB  (1024LL * MB)
#define DAY 86400LL

/* --- numbers ----------------------------------------------------------- */

struct unit {
	char suffix;
	long long mult;
};

static const struct unit size_units[] = {{'G', GB}, {'M', MB}, {'K', KB}, {0, 1}};
static const struct unit no_units[] = {{0, 1}};

/* "10M" -> 10485760 with units; a bare number is in the last unit (mult 1). */
static int parse_number(const char *s, const struct unit *units, long long *out)
{
	long long n, mult = 1;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno)
		return -1;
	if (*end != '\0') {
		const struct unit *u;
		for (u = units; u->suffix; u++)
			if (toupper((unsigned char)*end) == toupper((unsigned char)u->suffix))
				break;
		if (u->suffix == 0 || end[1] != '\0')
			return -1;
		mult = u->mult;
	}
	if (n > LLONG_MAX / mult)
		return -1;
	*out = n * mult;
	return 0;
}

/* The largest unit that divides n exactly: 10485760 -> "10M". */
static void format_number(struct buf *out, long long n, const struct unit *units)
{
	for (const struct unit *u = units; u->suffix; u++)
		if (n != 0 && n % u->mult == 0) {
			buf_printf(out, "%lld%c", n / u->mult, u->suffix);
			return;
		}
	buf_printf(out, "%lld", n);
}

/* The number v means for row s (sizes in bytes, T_DURATION in seconds,
 * T_MS in milliseconds); -1 if v is not one. */
static long long parse_typed_number(const struct setting *s, const char *v)
{
	long long n;

	if (s->type == T_DURATION)
		return duration_parse(v, LLONG_MAX);
	if (s->type == T_MS)
		return duration_parse_ms(v, LLONG_MAX);
	if (parse_number(v, s->type == T_SIZE ? size_units : no_units, &n) < 0)
		return -1;
	return n;
}

/* n of row s's type as the file writes it ("10M", "5m", "500ms", "3"). */
static void format_typed_number(const struct setting *s, long long n, struct buf *out)
{
	char text[32];

	if (s->type == T_SIZE)
		format_number(out, n, size_units);
	else if (s->type == T_DURATION || s->type == T_MS) {
		duration_format_ms(text, sizeof(text), s->type == T_MS ? n : n * 1000);
		buf_puts(out, text);
	} else
		buf_printf(out, "%lld", n);
}

static const char *const number_words[] = {
    [T_INT] = "whole number",
    [T_SIZE] = "size (a number with K, M or G)",
    [T_DURATION] = "duration (a number with s, m, h or d)",
    [T_MS] = "duration (e.g. 500ms, 30s, 2m)",
};

/* --- per-type parse / format / release --------------------------------- */

#define FIELD(cfg, s, type)  ((type *)((char *)(cfg) + (s)->off))
#define CFIELD(cfg, s, type) ((const type *)((const char *)(cfg) + (s)->off))

static int parse_num_setting(const struct setting *s, const char *v, void *cfg, struct buf *problem)
{
	long long n = parse_typed_number(s, v);

	if (n < 0) {
		buf_printf(problem, "'%s' is not a %s", v, number_words[s->type]);
		return -1;
	}
	if (n < s->min || n > s->max) {
		buf_printf(problem, "%s is out of range (", v);
		format_typed_number(s, s->min, problem);
		buf_puts(problem, " to ");
		format_typed_number(s, s->max, problem);
		buf_puts(problem, ")");
		return -1;
	}
	if (s->type == T_SIZE)
		*FIELD(cfg, s, uint64_t) = (uint64_t)n;
	else
		*FIELD(cfg, s, int) = (int)n;
	return 0;
}

static void format_num_setting(const struct setting *s, const void *cfg, struct buf *out)
{
	if (s->type == T_SIZE)
		format_typed_number(s, (long long)*CFIELD(cfg, s, uint64_t), out);
	else
		format_typed_number(s, *CFIELD(cfg, s, int), out);
}

/* T_ENUM: one of the row's names (any case); the field is its index. */
static int parse_enum(const struct setting *s, const char *v, void *cfg, struct buf *problem)
{
	size_t n = 0;

	for (; s->names[n]; n++)
		if (strcasecmp(v, s->names[n]) == 0) {
			*FIELD(cfg, s, int) = (int)n;
			return 0;
		}
	buf_printf(problem, "'%s' is not one of", v);
	for (size_t i = 0; i < n; i++)
		buf_printf(problem, "%s %s", i ? (i == n - 1 ? " or" : ",") : "", s->names[i]);
	return -1;
}

static void format_enum(const struct setting *s, const void *cfg, struct buf *out)
{
	int v = *CFIELD(cfg, s, int);
	int n = 0;

	while (s->names[n])
		n++;
	buf_puts(out, v >= 0 && v < n ? s->names[v] : "?");
}

static int parse_string(const struct setting *s, const char *v, void *cfg, struct buf *problem)
{
	char **field = FIELD(cfg, s, char *);

	if (s->check && s->check(v, problem) < 0)
		return -1;
	free(*field);
	*field = xstrdup(v);
	return 0;
}

static void format_string(const struct setting *s, const void *cfg, struct buf *out)
{
	const char *v = *CFIELD(cfg, s, char *);

	buf_puts(out, v ? v : "");
}

static void release_string(const struct setting *s, void *cfg)
{
	free(*FIELD(cfg, s, char *));
	*FIELD(cfg, s, char *) = NULL;
}

static int parse_bool(const struct setting *s, const char *v, void *cfg, struct buf *problem)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
			*FIELD(cfg, s, int) = strcasecmp(v, yes[i]) == 0;
			return 0;
		}
	}
	buf_printf(problem, "'%s' is not yes or no", v);
	return -1;
}

static void format_bool(const struct setting *s, const void *cfg, struct buf *out)
{
	buf_puts(out, *CFIELD(cfg, s, int) ? "yes" : "no");
}

static int parse_level(const struct setting *s, const char *v, void *cfg, struct buf *problem)
{
	enum ev_level l;

	if (event_parse_level(v, &l) != 0) {
		buf_printf(problem, "'%s' is not none, minimum, medium or maximum", v);
		return -1;
	}
	*FIELD(cfg, s, int) = (int)l;
	return 0;
}

static void format_level(const struct setting *s, const void *cfg, struct buf *out)
{
	buf_puts(out, event_level_name((enum ev_level) * CFIELD(cfg, s, int)));
}

static int list_check_count(const struct setting *s, size_t n, struct buf *problem)
{
	if ((long long)n < s->min || (s->max > 0 && (long long)n > s->max)) {
		buf_printf(problem, "%zu items; allowed %lld to %lld", n, s->min, s->max);
		return -1;
	}
	return 0;
}

static int parse_list(const struct setting *s, const char *v, void *cfg, struct buf *problem)
{
	struct strlist l = {0};
	struct strlist *field = FIELD(cfg, s, struct strlist);
	struct buf one = BUF_INIT;
	int bad = 0;

	strlist_split(&l, v);
	for (size_t i = 0; i < l.n; i++) {
		if (s->flags & F_LOWER)
			for (char *c = l.v[i]; *c; c++)
				*c = (char)tolower((unsigned char)*c);
		buf_reset(&one);
		if (s->check && s->check(l.v[i], &one) < 0)
			buf_printf(problem, "%s%s", bad++ ? "; " : "", buf_cstr(&one));
	}
	buf_free(&one);
	if (bad || list_check_count(s, l.n, problem) < 0)
		goto fail;
	strlist_free(field);
	*field = l;
	return 0;
fail:
	strlist_free(&l);
	return -1;
}

static void format_list(const struct setting *s, const void *cfg, struct buf *out)
{
	const struct strlist *l = CFIELD(cfg, s, struct strlist);

	for (size_t i = 0; i < l->n; i++)
		buf_printf(out, "%s%s", i ? ", " : "", l->v[i]);
}

static void release_list(const struct setting *s, void *cfg)
{
	strlist_free(FIELD(cfg, s, struct strlist));
}

static int parse_cidrs(const struct setting *s, const char *v, void *cfg, struct buf *problem)
{
	struct strlist l = {0};
	struct cidr *nets = NULL;
	int bad = 0;

	strlist_split(&l, v);
	nets = l.n ? xcalloc(l.n, sizeof(*nets)) : NULL;
	for (size_t i = 0; i < l.n; i++)
		if (cidr_parse(l.v[i], &nets[i]) < 0)
			buf_printf(problem, "%s'%s'", bad++ ? ", " : "bad network ", l.v[i]);
	if (bad) {
		buf_puts(problem, " (expected address/prefix, e.g. 192.0.2.0/24 or 2001:db8::/32)");
		goto fail;
	}
	if (list_check_count(s, l.n, problem) < 0)
		goto fail;
	free(*FIELD(cfg, s, struct cidr *));
	*FIELD(cfg, s, struct cidr *) = nets;
	*(size_t *)((char *)cfg + s->off_n) = l.n;
	strlist_free(&l);
	return 0;
fail:
	free(nets);
	strlist_free(&l);
	return -1;
}

static void format_cidrs(const struct setting *s, const void *cfg, struct buf *out)
{
	const struct cidr *nets = *CFIELD(cfg, s, struct cidr *);
	size_t n = *(const size_t *)((const char *)cfg + s->off_n);
	char host[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < n; i++) {
		if (inet_ntop(nets[i].family, nets[i].addr, host, sizeof(host)) == NULL)
			snprintf(host, sizeof(host), "?");
		buf_printf(out, "%s%s/%d", i ? ", " : "", host, nets[i].prefix);
	}
}

static void release_cidrs(const struct setting *s, void *cfg)
{
	free(*FIELD(cfg, s, struct cidr *));
	*FIELD(cfg, s, struct cidr *) = NULL;
	*(size_t *)((char *)cfg + s->off_n) = 0;
}

static int parse_custom(const struct setting *s, const char *v, void *cfg, struct buf *problem)
{
	return s->parse(s, cfg, v, problem);
}

static void format_custom(const struct setting *s, const void *cfg, struct buf *out)
{
	s->format(s, cfg, out);
}

static void release_custom(const struct setting *s, void *cfg)
{
	if (s->release)
		s->release(s, cfg);
}

static const struct type_ops {
	const char *name;
	int (*parse)(const struct setting *s, const char *v, void *cfg, struct buf *problem);
	void (*format)(const struct setting *s, const void *cfg, struct buf *out);
	void (*release)(const struct setting *s, void *cfg); /* NULL: nothing owned */
} types[] = {
    [T_STRING] = {"string", parse_string, format_string, release_string},
    [T_INT] = {"int", parse_num_setting, format_num_setting, NULL},
    [T_SIZE] = {"size", parse_num_setting, format_num_setting, NULL},
    [T_DURATION] = {"duration", parse_num_setting, format_num_setting, NULL},
    [T_MS] = {"duration in ms", parse_num_setting, format_num_setting, NULL},
    [T_ENUM] = {"enum", parse_enum, format_enum, NULL},
    [T_BOOL] = {"bool", parse_bool, format_bool, NULL},
    [T_LIST] = {"list", parse_list, format_list, release_list},
    [T_CIDRS] = {"cidr list", parse_cidrs, format_cidrs, release_cidrs},
    [T_LEVEL] = {"level", parse_level, format_level, NULL},
    [T_CUSTOM] = {"custom", parse_custom, format_custom, release_custom},
};

/* --- tables --------------------------------------------------------------- */

void settings_defaults(const struct settings_table *t, void *base)
{
	struct buf problem = BUF_INIT;

	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].def &&
		    types[t->v[i].type].parse(&t->v[i], t->v[i].def, base, &problem) < 0)
			panic("config: default of %s: %s", t->v[i].name, buf_cstr(&problem));
	buf_free(&problem);
}

int settings_parse_value(const struct setting *s, void *base, const char *value,
			 struct buf *problem)
{
	return types[s->type].parse(s, value, base, problem);
}

const struct setting *settings_find(const struct settings_table *t, const char *key)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].name, key) == 0)
			return &t->v[i];
	return NULL;
}

int settings_parse(const struct settings_table *t, void *base, unsigned char *given,
		   const char *key, const char *value, struct buf *problem)
{
	const struct setting *s = settings_find(t, key);

	if (s == NULL)
		return 1;
	if (given && given[s - t->v]) {
		buf_printf(problem, "set twice in %s", t->section);
		return -1;
	}
	if (given)
		given[s - t->v] = 1;
	return settings_parse_value(s, base, value, problem);
}

void settings_format(const struct setting *s, const void *base, struct buf *out)
{
	types[s->type].format(s, base, out);
}

void settings_show(const struct settings_table *t, const void *base, FILE *out)
{
	struct buf v = BUF_INIT;

	for (size_t i = 0; i < t->n; i++) {
		buf_reset(&v);
		settings_format(&t->v[i], base, &v);
		fprintf(out, "%s =%s%s\n", t->v[i].name, v.len ? " " : "", buf_cstr(&v));
	}
	buf_free(&v);
}

/* Bytes of row s's field (T_CUSTOM: unknown, 0). */
static size_t settings_field_size(const struct setting *s)
{
	switch (s->type) {
	case T_STRING:
		return sizeof(char *);
	case T_SIZE:
		return sizeof(uint64_t);
	case T_LIST:
		return sizeof(struct strlist);
	case T_CIDRS:
		return sizeof(struct cidr *);
	case T_INT:
	case T_DURATION:
	case T_BOOL:
	case T_LEVEL:
	case T_MS:
	case T_ENUM:
		return sizeof(int);
	case T_CUSTOM:
		break;
	}
	return 0;
}

static void settings_swap_bytes(void *a, void *b, size_t n)
{
	unsigned char *x = a, *y = b, t;

	for (size_t i = 0; i < n; i++) {
		t = x[i];
		x[i] = y[i];
		y[i] = t;
	}
}

int settings_swap(const struct setting *s, void *a, void *b)
{
	size_t n = settings_field_size(s);

	if (s->type == T_CUSTOM && s->swap) {
		s->swap(s, a, b);
		return 0;
	}
	if (n == 0)
		return -1;
	settings_swap_bytes((char *)a + s->off, (char *)b + s->off, n);
	if (s->type == T_CIDRS)
		settings_swap_bytes((char *)a + s->off_n, (char *)b + s->off_n, sizeof(size_t));
	return 0;
}

void settings_release(const struct settings_table *t, void *base)
{
	for (size_t i = 0; i < t->n; i++)
		if (types[t->v[i].type].release)
			types[t->v[i].type].release(&t->v[i], base);
}

void settings_names(const struct settings_table *t, struct buf *out)
{
	for (size_t i = 0; i < t->n; i++)
		buf_printf(out, "%s%s", out->len && i == 0 ? ", " : i ? ", " : "", t->v[i].name);
}
