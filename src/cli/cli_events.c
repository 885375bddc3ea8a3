/* dialmail events: reads DIR/log/events.jsonl, filters it, and prints a table
 * or the JSON lines unchanged. The log is read-only here; a damaged line is
 * reported with its line number and skipped, never fatal. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "mail/config.h"
#include "mail/event.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/xmalloc.h"

#define EVENTS_MAX_IDS 64

struct events_filter {
	int ids[EVENTS_MAX_IDS];
	size_t n_ids;
	int max_rank;	      /* 0 error, 1 warning, 2 information */
	const char *category; /* display name, or NULL */
	int64_t since;	      /* usec, or -1 */
	int json;
	long tail; /* last N matches, or -1 for all */
};

/* Keeps the last N printed records for --tail. */
struct events_ring {
	char **items;
	size_t cap, start, count;
};

static const struct {
	const char *key;
	enum ev_category cat;
} events_cat_keys[] = {
    {"init", EVC_INIT},		{"initialization", EVC_INIT}, {"smtp", EVC_SMTP},
    {"transfer", EVC_TRANSFER}, {"queue", EVC_QUEUE},	      {"delivery", EVC_DELIVERY},
    {"dialup", EVC_DIALUP},	{"dial-up", EVC_DIALUP},      {"security", EVC_SECURITY},
};

static void events_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: dialmail events [--dir DIR] [--id N[,N...]] "
	    "[--severity error|warning|information]\n"
	    "                       [--category NAME] [--since TIME] [--json] [--tail N]\n"
	    "  --severity S  S and worse: error; warning (and errors); information (all)\n"
	    "  --category C  init, smtp, transfer, queue, delivery, dialup, security,\n"
	    "                or the display name (\"Message Transfer\")\n"
	    "  --since T     2026-11-25T12:00:00Z, \"2026-11-25 12:00\" (UTC), or 10m, 2h, 1d\n");
}

static int events_severity_rank(const char *s)
{
	if (strcasecmp(s, "error") == 0)
		return 0;
	if (strcasecmp(s, "warning") == 0)
		return 1;
	if (strcasecmp(s, "information") == 0 || strcasecmp(s, "info") == 0)
		return 2;
	return -1;
}

/* The display name for a short key or display name, or NULL. */
static const char *events_category(const char *s)
{
	for (size_t i = 0; i < sizeof(events_cat_keys) / sizeof(events_cat_keys[0]); i++)
		if (strcasecmp(s, events_cat_keys[i].key) == 0)
			return event_category_name(events_cat_keys[i].cat);
	for (int c = 0; c < EVC_COUNT; c++)
		if (strcasecmp(s, event_category_name(c)) == 0)
			return event_category_name(c);
	return NULL;
}

static int events_parse_ids(const char *s, struct events_filter *f)
{
	while (*s) {
		char *end;
		long v;

		errno = 0;
		v = strtol(s, &end, 10);
		if (errno || end == s || v < 0 || v > 99999 || (*end && *end != ','))
			return -1;
		if (f->n_ids == EVENTS_MAX_IDS)
			return -1;
		f->ids[f->n_ids++] = (int)v;
		s = *end ? end + 1 : end;
	}
	return f->n_ids ? 0 : -1;
}

/* Parses "YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z]" as UTC into microseconds. */
static int events_parse_time(const char *s, int64_t *usec)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	int64_t frac = 0, scale = 100000;
	const char *p;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -1;
	p = s + n;
	if (*p == 'T' || *p == ' ') {
		if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &n) != 2)
			return -1;
		p += 1 + n;
		if (*p == ':') {
			if (sscanf(p + 1, "%2d%n", &sec, &n) != 1)
				return -1;
			p += 1 + n;
		}
		if (*p == '.')
			for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
				frac += (*p - '0') * scale;
	}
	if (*p == 'Z')
		p++;
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*usec = (int64_t)timegm(&tm) * 1000000 + frac;
	return 0;
}

int cli_parse_since(const char *s, int64_t *usec)
{
	char *end;
	long long v;
	int64_t unit;

	if (events_parse_time(s, usec) == 0)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (*end) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	case 'w':
		unit = 7 * 86400;
		break;
	default:
		return -1;
	}
	if (v > INT64_MAX / 1000000 / unit)
		return -1;
	*usec = (int64_t)clock_now() * 1000000 - (int64_t)v * unit * 1000000;
	return 0;
}

static int events_parse_args(int argc, char **argv, struct events_filter *f, const char **dir)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"id", required_argument, NULL, 'i'},
	    {"severity", required_argument, NULL, 's'},
	    {"category", required_argument, NULL, 'c'},
	    {"since", required_argument, NULL, 'S'},
	    {"json", no_argument, NULL, 'j'},
	    {"tail", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;
	char *end;

	optind = 0; /* glibc: a full reset, so tests can call cmd_events again */
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			*dir = optarg;
			break;
		case 'h':
			return -2;
		case 'i':
			if (events_parse_ids(optarg, f) < 0)
				return -1;
			break;
		case 's':
			if ((f->max_rank = events_severity_rank(optarg)) < 0)
				return -1;
			break;
		case 'c':
			if (!(f->category = events_category(optarg)))
				return -1;
			break;
		case 'S':
			if (cli_parse_since(optarg, &f->since) < 0)
				return -1;
			break;
		case 'j':
			f->json = 1;
			break;
		case 't':
			errno = 0;
			f->tail = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || f->tail < 0)
				return -1;
			break;
		default:
			return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

static int events_match(const struct events_filter *f, json_t *ev)
{
	json_int_t id = json_integer_value(json_object_get(ev, "id"));
	const char *sev = json_string_value(json_object_get(ev, "severity"));
	const char *cat = json_string_value(json_object_get(ev, "category"));
	const char *when = json_string_value(json_object_get(ev, "time"));
	int64_t t;
	size_t i;

	for (i = 0; i < f->n_ids && f->ids[i] != id; i++)
		;
	if (f->n_ids && i == f->n_ids)
		return 0;
	if (f->max_rank < 2 &&
	    (!sev || events_severity_rank(sev) < 0 || events_severity_rank(sev) > f->max_rank))
		return 0;
	if (f->category && (!cat || strcasecmp(cat, f->category) != 0))
		return 0;
	if (f->since >= 0 && (!when || events_parse_time(when, &t) < 0 || t < f->since))
		return 0;
	return 1;
}

/* Appends s with control characters shown as spaces, for one table row. */
static void events_put_clean(struct buf *b, const char *s)
{
	for (; s && *s; s++)
		buf_putc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
}

/* One table row: the five columns, then any extra fields as key=value. */
static char *events_row(json_t *ev)
{
	static const char *const std[] = {"time", "id", "severity", "category", "text"};
	struct buf b = BUF_INIT;
	const char *key;
	json_t *val;
	const char *sep = " (";

	buf_printf(&b, "%-24s  %-4lld  %-11s  %-26s  ",
		   json_string_value(json_object_get(ev, "time")) ?: "-",
		   (long long)json_integer_value(json_object_get(ev, "id")),
		   json_string_value(json_object_get(ev, "severity")) ?: "-",
		   json_string_value(json_object_get(ev, "category")) ?: "-");
	events_put_clean(&b, json_string_value(json_object_get(ev, "text")));
	json_object_foreach(ev, key, val)
	{
		size_t i;

		for (i = 0; i < 5 && strcmp(key, std[i]) != 0; i++)
			;
		if (i < 5 || !json_is_string(val))
			continue;
		buf_printf(&b, "%s%s=", sep, key);
		events_put_clean(&b, json_string_value(val));
		sep = ", ";
	}
	if (strcmp(sep, ", ") == 0)
		buf_putc(&b, ')');
	buf_putc(&b, '\n');
	return buf_steal(&b);
}

static void events_emit(struct events_ring *r, char *out)
{
	if (r->cap == 0) {
		fputs(out, stdout);
		free(out);
		return;
	}
	if (r->count == r->cap) {
		free(r->items[r->start]);
		r->items[r->start] = out;
		r->start = (r->start + 1) % r->cap;
		return;
	}
	r->items[(r->start + r->count++) % r->cap] = out;
}

static void events_flush(struct events_ring *r)
{
	for (size_t i = 0; i < r->count; i++) {
		char *s = r->items[(r->start + i) % r->cap];

		fputs(s, stdout);
		free(s);
	}
	free(r->items);
}

/* Handles one line of the log; returns 0, or -1 if it is damaged. */
static int events_line(const struct events_filter *f, struct events_ring *r, char *line, size_t len,
		       json_error_t *err)
{
	json_t *ev;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (len == 0)
		return 0;
	ev = json_loadb(line, len, 0, err);
	if (!ev)
		return -1;
	if (!json_is_object(ev) || !json_is_integer(json_object_get(ev, "id"))) {
		snprintf(err->text, sizeof(err->text), "not an event object");
		json_decref(ev);
		return -1;
	}
	if (events_match(f, ev))
		events_emit(r, f->json ? xasprintf("%s\n", line) : events_row(ev));
	json_decref(ev);
	return 0;
}

static int events_read(const struct events_filter *f, FILE *in, const char *path)
{
	struct events_ring ring = {NULL, 0, 0, 0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	json_error_t err;

	if (f->tail > 0) {
		ring.cap = (size_t)f->tail;
		ring.items = xcalloc(ring.cap, sizeof(char *));
	} else if (f->tail == 0) {
		return 0;
	}
	if (!f->json)
		printf("%-24s  %-4s  %-11s  %-26s  %s\n", "TIME", "ID", "SEVERITY", "CATEGORY",
		       "TEXT");
	while ((n = getline(&line, &cap, in)) != -1) {
		lineno++;
		if (events_line(f, &ring, line, (size_t)n, &err) < 0)
			fprintf(stderr, "dialmail events: %s:%ld: bad line skipped: %s\n", path,
				lineno, err.text);
	}
	free(line);
	events_flush(&ring);
	return 0;
}

int cmd_events(int argc, char **argv)
{
	struct events_filter f = {.max_rank = 2, .since = -1, .tail = -1};
	const char *dir = NULL;
	char *path;
	FILE *in;
	int rc;

	rc = events_parse_args(argc, argv, &f, &dir);
	if (rc < 0) {
		events_usage(rc == -2 ? stdout : stderr);
		return rc == -2 ? 0 : EX_USAGE;
	}
	path = xasprintf("%s/log/events.jsonl", config_spool_dir(dir));
	in = fopen(path, "r");
	if (!in) {
		rc = errno == ENOENT ? 0 : EX_NOINPUT;
		if (rc)
			fprintf(stderr, "dialmail events: %s: %s\n", path, strerror(errno));
		free(path);
		return rc;
	}
	rc = events_read(&f, in, path);
	fclose(in);
	free(path);
	fflush(stdout);
	return rc;
}
