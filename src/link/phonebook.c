/* [phonebook NAME] sections: a table of fields (name, kind, default, bounds)
 * that the parser and show-config share, as config.c does for settings.
 * Invariant: every entry starts from the defaults below; a field is set once. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xmalloc.h"
#include "lib/duration.h"
#include "link/phonebook.h"

enum pb_kind { K_STR, K_INT, K_MS, K_INIT, K_NUMBERS, K_TYPE, K_DATA, K_FLOW, K_SPEED };

struct pb_field {
	const char *name;
	enum pb_kind kind;
	const char *def;
	long long min, max;
	size_t off;
	unsigned where; /* PBW_*: the sections the field belongs to */
};

#define PBW_DIAL   1u /* [phonebook NAME] */
#define PBW_ANSWER 2u /* [answer NAME] */
#define PBW_BOTH   (PBW_DIAL | PBW_ANSWER)

#define POFF(f) offsetof(struct phonebook_entry, f)
#define HOUR_MS (3600LL * 1000)

static const struct pb_field pb_fields[] = {
    {"type", K_TYPE, "modem", 0, 0, POFF(type), PBW_DIAL},
    {"device", K_STR, "", 0, 0, POFF(device), PBW_BOTH},
    {"speed", K_SPEED, "115200", 0, 0, POFF(speed), PBW_BOTH},
    {"init", K_INIT, "ATZ", 0, 0, POFF(init), PBW_BOTH},
    {"numbers", K_NUMBERS, "", 0, 0, POFF(numbers), PBW_DIAL},
    {"dial_prefix", K_STR, "ATDT", 0, 0, POFF(dial_prefix), PBW_DIAL},
    {"dial_timeout", K_MS, "60s", 100, HOUR_MS, POFF(dial_timeout_ms), PBW_DIAL},
    {"at_timeout", K_MS, "3s", 50, 60000, POFF(at_timeout_ms), PBW_BOTH},
    {"redial_attempts", K_INT, "3", 1, 100, POFF(redial_attempts), PBW_DIAL},
    {"redial_interval", K_MS, "30s", 0, HOUR_MS, POFF(redial_interval_ms), PBW_DIAL},
    {"flow_control", K_FLOW, "hardware", 0, 0, POFF(hwflow), PBW_BOTH},
    {"data", K_DATA, "none", 0, 0, POFF(data), PBW_DIAL},
    {"pppd", K_STR, "/usr/sbin/pppd", 0, 0, POFF(pppd), PBW_DIAL},
    {"ppp_options", K_STR, "", 0, 0, POFF(ppp_options), PBW_DIAL},
    {"ppp_up_file", K_STR, "", 0, 0, POFF(ppp_up_file), PBW_DIAL},
    {"up", K_STR, "", 0, 0, POFF(up), PBW_DIAL},
    {"down", K_STR, "", 0, 0, POFF(down), PBW_DIAL},
    {"check", K_STR, "", 0, 0, POFF(check), PBW_DIAL},
    {"up_timeout", K_MS, "60s", 100, HOUR_MS, POFF(up_timeout_ms), PBW_DIAL},
    {"rings", K_INT, "1", 1, 20, POFF(rings), PBW_ANSWER},
    {"answer_timeout", K_MS, "60s", 1000, 600000, POFF(answer_timeout_ms), PBW_ANSWER},
};

#define PB_NFIELDS (sizeof(pb_fields) / sizeof(pb_fields[0]))

static const char *const pb_type_names[] = {"modem", "command", "always", "answer"};
static const char *const pb_data_names[] = {"none", "ppp", "direct", "command"};
static const char *const pb_flow_names[] = {"none", "hardware"};
static const int pb_speeds[] = {300,   1200,  2400,   4800,   9600,   19200,
				38400, 57600, 115200, 230400, 460800, 921600};

/* Parser bookkeeping: the line each field of each entry was set on. */
struct pb_private {
	struct phonebook pb;
	const char *section; /* "phonebook" or "answer" */
	int (*set_at)[PB_NFIELDS];
};

#define ENTRY_FIELD(e, f, type) ((type *)((char *)(e) + (f)->off))

const char *phonebook_type_name(enum pb_type t)
{
	return (unsigned)t < 3 ? pb_type_names[t] : "?";
}

const char *phonebook_data_name(enum pb_data d)
{
	return (unsigned)d < 4 ? pb_data_names[d] : "?";
}

static int pb_enum(const char *v, const char *const *names, int n, int *out, struct buf *problem)
{
	for (int i = 0; i < n; i++)
		if (strcasecmp(v, names[i]) == 0) {
			*out = i;
			return 0;
		}
	buf_printf(problem, "'%s' is not one of", v);
	for (int i = 0; i < n; i++)
		buf_printf(problem, "%s %s", i ? (i == n - 1 ? " or" : ",") : "", names[i]);
	return -1;
}

/* A duration in milliseconds as the file writes it (lib/duration.h). */
static void pb_format_ms(struct buf *out, long long ms)
{
	char text[32];

	duration_format_ms(text, sizeof(text), ms);
	buf_puts(out, text);
}

/* "ATZ | AT&F E0 V1": each part trimmed, non-empty, starting with AT. */
static int pb_parse_init(const char *v, struct strlist *out, struct buf *problem)
{
	char *copy = xstrdup(v), *save = NULL, *part;
	int rc = 0;

	for (part = strtok_r(copy, "|", &save); part; part = strtok_r(NULL, "|", &save)) {
		char *end;
		part += strspn(part, " \t");
		end = part + strlen(part);
		while (end > part && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*part == '\0')
			continue;
		if (strncasecmp(part, "AT", 2) != 0) {
			buf_printf(problem, "init string '%s' does not start with AT", part);
			rc = -1;
			break;
		}
		strlist_add(out, part);
	}
	free(copy);
	return rc;
}

/* Numbers are separated by commas (blanks inside a number are kept for
 * reading and left out when dialing); dial string characters of the Hayes
 * command set only. */
static int pb_parse_numbers(const char *v, struct strlist *out, struct buf *problem)
{
	char *copy = xstrdup(v), *save = NULL, *part;

	for (part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
		char *end;
		part += strspn(part, " \t");
		end = part + strlen(part);
		while (end > part && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*part)
			strlist_add(out, part);
	}
	free(copy);
	for (size_t i = 0; i < out->n; i++) {
		const char *n = out->v[i];
		if (strspn(n, "0123456789*#WwPpTt@!+-() ABCDabcd") != strlen(n) || strlen(n) > 40) {
			buf_printf(
			    problem,
			    "'%s' is not a phone number (digits, blanks, * # W P T @ ! + - ( ); "
			    "at most 40 characters)",
			    n);
			return -1;
		}
	}
	return 0;
}

static int pb_parse_speed(const char *v, int *out, struct buf *problem)
{
	char *end;
	long n = strtol(v, &end, 10);

	for (size_t i = 0; *v && *end == '\0' && i < sizeof(pb_speeds) / sizeof(pb_speeds[0]); i++)
		if (pb_speeds[i] == n) {
			*out = (int)n;
			return 0;
		}
	buf_printf(problem, "'%s' is not a serial port speed (300 ... 921600, e.g. 115200)", v);
	return -1;
}

static int pb_parse_num(const struct pb_field *f, const char *v, long long *n, struct buf *problem)
{
	char *end;

	if (f->kind == K_MS) {
		if ((*n = duration_parse_ms(v, LLONG_MAX)) < 0) {
			buf_printf(problem, "'%s' is not a duration (e.g. 500ms, 30s, 2m)", v);
			return -1;
		}
	} else {
		errno = 0;
		*n = strtoll(v, &end, 10);
		if (!*v || *end || errno) {
			buf_printf(problem, "'%s' is not a whole number", v);
			return -1;
		}
	}
	if (*n < f->min || *n > f->max) {
		buf_printf(problem, "%s is out of range (", v);
		if (f->kind == K_MS) {
			pb_format_ms(problem, f->min);
			buf_puts(problem, " to ");
			pb_format_ms(problem, f->max);
		} else
			buf_printf(problem, "%lld to %lld", f->min, f->max);
		buf_puts(problem, ")");
		return -1;
	}
	return 0;
}

static int pb_parse_field(const struct pb_field *f, const char *v, struct phonebook_entry *e,
			  struct buf *problem)
{
	long long n;
	int i;
	struct strlist l = {0};

	switch (f->kind) {
	case K_STR:
		free(*ENTRY_FIELD(e, f, char *));
		*ENTRY_FIELD(e, f, char *) = xstrdup(v);
		return 0;
	case K_INT:
	case K_MS:
		if (pb_parse_num(f, v, &n, problem) < 0)
			return -1;
		*ENTRY_FIELD(e, f, int) = (int)n;
		return 0;
	case K_INIT:
	case K_NUMBERS:
		if ((f->kind == K_INIT ? pb_parse_init(v, &l, problem)
				       : pb_parse_numbers(v, &l, problem)) < 0) {
			strlist_free(&l);
			return -1;
		}
		strlist_free(ENTRY_FIELD(e, f, struct strlist));
		*ENTRY_FIELD(e, f, struct strlist) = l;
		return 0;
	case K_SPEED:
		return pb_parse_speed(v, ENTRY_FIELD(e, f, int), problem);
	case K_TYPE:
	case K_DATA:
	case K_FLOW:
		if (pb_enum(v,
			    f->kind == K_TYPE	? pb_type_names
			    : f->kind == K_DATA ? pb_data_names
						: pb_flow_names,
			    f->kind == K_TYPE	? 3
			    : f->kind == K_DATA ? 4
						: 2,
			    &i, problem) < 0)
			return -1;
		*ENTRY_FIELD(e, f, int) = i;
		return 0;
	}
	return -1;
}

static void pb_format_field(const struct pb_field *f, const struct phonebook_entry *e,
			    struct buf *out)
{
	const struct strlist *l;
	int i;

	switch (f->kind) {
	case K_STR:
		buf_puts(out, *ENTRY_FIELD(e, f, char *) ? *ENTRY_FIELD(e, f, char *) : "");
		return;
	case K_INT:
	case K_SPEED:
		buf_printf(out, "%d", *ENTRY_FIELD(e, f, int));
		return;
	case K_MS:
		pb_format_ms(out, *ENTRY_FIELD(e, f, int));
		return;
	case K_INIT:
	case K_NUMBERS:
		l = ENTRY_FIELD(e, f, struct strlist);
		for (size_t j = 0; j < l->n; j++)
			buf_printf(out, "%s%s", j ? (f->kind == K_INIT ? " | " : ", ") : "",
				   l->v[j]);
		return;
	case K_TYPE:
	case K_DATA:
	case K_FLOW:
		i = *ENTRY_FIELD(e, f, int);
		buf_puts(out, f->kind == K_TYPE	  ? pb_type_names[i]
			      : f->kind == K_DATA ? pb_data_names[i]
						  : pb_flow_names[i]);
		return;
	}
}

static void pb_entry_free(struct phonebook_entry *e)
{
	for (size_t i = 0; i < PB_NFIELDS; i++) {
		const struct pb_field *f = &pb_fields[i];
		if (f->kind == K_STR)
			free(*ENTRY_FIELD(e, f, char *));
		else if (f->kind == K_INIT || f->kind == K_NUMBERS)
			strlist_free(ENTRY_FIELD(e, f, struct strlist));
	}
	free(e->name);
	memset(e, 0, sizeof(*e));
}

static int pb_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= 64 &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
		   n;
}

const struct phonebook_entry *phonebook_find(const struct phonebook *pb, const char *name)
{
	for (size_t i = 0; pb && i < pb->n; i++)
		if (strcasecmp(pb->v[i].name, name) == 0)
			return &pb->v[i];
	return NULL;
}

static unsigned pb_where(const struct pb_private *pp)
{
	return strcmp(pp->section, "answer") == 0 ? PBW_ANSWER : PBW_DIAL;
}

static int pb_open(struct phonebook **pbp, const char *section, const char *name, int line,
		   struct buf *problem)
{
	struct pb_private *pp;
	struct phonebook_entry *e, *dup;
	struct buf dummy = BUF_INIT;

	if (!pb_name_ok(name)) {
		buf_printf(problem,
			   "'%s' is not a %s entry name (letters, digits, '-', '_', '.'; "
			   "at most 64)",
			   name, strcmp(section, "answer") == 0 ? "answer line" : "phone book");
		return -1;
	}
	if ((dup = (struct phonebook_entry *)phonebook_find(*pbp, name)) != NULL) {
		buf_printf(problem, "entry '%s' defined twice, first at line %d", name, dup->line);
		return -1;
	}
	if (*pbp == NULL) {
		*pbp = xcalloc(1, sizeof(struct pb_private));
		((struct pb_private *)*pbp)->section = section;
	}
	pp = (struct pb_private *)*pbp;
	pp->pb.v = xrealloc(pp->pb.v, (pp->pb.n + 1) * sizeof(*pp->pb.v));
	pp->set_at = xrealloc(pp->set_at, (pp->pb.n + 1) * sizeof(*pp->set_at));
	e = &pp->pb.v[pp->pb.n];
	memset(e, 0, sizeof(*e));
	memset(pp->set_at[pp->pb.n], 0, sizeof(pp->set_at[0]));
	pp->pb.n++;
	e->name = xstrdup(name);
	e->line = line;
	for (size_t i = 0; i < PB_NFIELDS; i++)
		if (pb_parse_field(&pb_fields[i], pb_fields[i].def, e, &dummy) < 0)
			abort(); /* a default that does not parse is our bug */
	if (pb_where(pp) == PBW_ANSWER)
		e->type = PB_ANSWER;
	buf_free(&dummy);
	return 0;
}

int phonebook_section_open(struct phonebook **pbp, const char *name, int line, struct buf *problem)
{
	return pb_open(pbp, "phonebook", name, line, problem);
}

int phonebook_answer_open(struct phonebook **pbp, const char *name, int line, struct buf *problem)
{
	return pb_open(pbp, "answer", name, line, problem);
}

int phonebook_section_line(struct phonebook *pb, const char *key, const char *value,
			   struct buf *problem)
{
	struct pb_private *pp = (struct pb_private *)pb;
	struct phonebook_entry *e;
	int *set_at;
	size_t i;

	if (pb == NULL || pb->n == 0)
		return -1;
	e = &pb->v[pb->n - 1];
	set_at = pp->set_at[pb->n - 1];
	for (i = 0; i < PB_NFIELDS; i++)
		if (strcmp(pb_fields[i].name, key) == 0 && (pb_fields[i].where & pb_where(pp)))
			break;
	if (i == PB_NFIELDS) {
		buf_printf(problem, "unknown %s field in [%s %s]",
			   pb_where(pp) == PBW_ANSWER ? "answer line" : "phone book", pp->section,
			   e->name);
		return -1;
	}
	if (set_at[i]) {
		buf_printf(problem, "set twice in [%s %s]", pp->section, e->name);
		return -1;
	}
	set_at[i] = 1;
	return pb_parse_field(&pb_fields[i], value, e, problem);
}

static int pb_entry_check(const struct phonebook_entry *e, struct buf *problem)
{
	if (e->type == PB_MODEM) {
		if (!e->device[0])
			buf_puts(problem, "type modem needs a device");
		else if (e->numbers.n == 0)
			buf_puts(problem, "type modem needs numbers");
		else if (strncasecmp(e->dial_prefix, "AT", 2) != 0)
			buf_printf(problem, "dial_prefix '%s' does not start with AT",
				   e->dial_prefix);
		else if (e->data == PB_DATA_PPP && !e->pppd[0])
			buf_puts(problem, "data ppp needs pppd");
		else if (e->data == PB_DATA_COMMAND && !e->up[0])
			buf_puts(problem, "data command needs an up command");
	} else if (e->type == PB_COMMAND && !e->up[0])
		buf_puts(problem, "type command needs an up command");
	else if (e->type == PB_ANSWER && !e->device[0])
		buf_puts(problem, "an answer line needs a device");
	return problem->len ? -1 : 0;
}

int phonebook_check(const struct phonebook *pb, const char *path, struct buf *err)
{
	struct buf problem = BUF_INIT;
	int n = 0;

	for (size_t i = 0; pb && i < pb->n; i++) {
		buf_reset(&problem);
		if (pb_entry_check(&pb->v[i], &problem) < 0) {
			buf_printf(err, "%s:%d: [%s %s]: %s\n", path ? path : "(config)",
				   pb->v[i].line, ((const struct pb_private *)pb)->section,
				   pb->v[i].name, buf_cstr(&problem));
			n++;
		}
	}
	buf_free(&problem);
	return n;
}

void phonebook_free(struct phonebook *pb)
{
	struct pb_private *pp = (struct pb_private *)pb;

	if (pb == NULL)
		return;
	for (size_t i = 0; i < pb->n; i++)
		pb_entry_free(&pb->v[i]);
	free(pb->v);
	free(pp->set_at);
	free(pp);
}

void phonebook_show(const struct phonebook *pb, FILE *out)
{
	const struct pb_private *pp = (const struct pb_private *)pb;
	struct buf v = BUF_INIT;

	for (size_t i = 0; pb && i < pb->n; i++) {
		fprintf(out, "\n[%s %s]\n", pp->section, pb->v[i].name);
		for (size_t j = 0; j < PB_NFIELDS; j++) {
			if (!(pb_fields[j].where & pb_where(pp)))
				continue;
			buf_reset(&v);
			pb_format_field(&pb_fields[j], &pb->v[i], &v);
			fprintf(out, "%s =%s%s\n", pb_fields[j].name, v.len ? " " : "",
				buf_cstr(&v));
		}
	}
	buf_free(&v);
}

/* --- the configuration module ([phonebook NAME], [answer NAME]) ---------- */

static int phonebook_cfg_open(struct config *cfg, const char *arg, int line, struct buf *problem)
{
	return phonebook_section_open(&cfg->phonebook, arg, line, problem);
}

static int phonebook_cfg_line(struct config *cfg, const char *key, const char *value,
			      struct buf *problem)
{
	return phonebook_section_line(cfg->phonebook, key, value, problem);
}

static int phonebook_cfg_answer_open(struct config *cfg, const char *arg, int line,
				     struct buf *problem)
{
	return phonebook_answer_open(&cfg->answer, arg, line, problem);
}

static int phonebook_cfg_answer_line(struct config *cfg, const char *key, const char *value,
				     struct buf *problem)
{
	return phonebook_section_line(cfg->answer, key, value, problem);
}

/* An answer line holds its device (and lock) all the time: it cannot be a
 * phone book entry's modem too; and callers must be able to AUTH. */
static int phonebook_answer_check(const struct config *cfg, const char *path, struct buf *err)
{
	int n = 0;

	for (size_t i = 0; cfg->answer && i < cfg->answer->n; i++) {
		const struct phonebook_entry *a = &cfg->answer->v[i];
		for (size_t j = 0; cfg->phonebook && j < cfg->phonebook->n; j++) {
			const struct phonebook_entry *e = &cfg->phonebook->v[j];
			if (e->type == PB_MODEM && e->device && strcmp(e->device, a->device) == 0) {
				buf_printf(err,
					   "%s:%d: [answer %s]: device %s is also the modem of "
					   "[phonebook %s]; an answer line keeps its device\n",
					   path ? path : "(config)", a->line, a->name, a->device,
					   e->name);
				n++;
			}
		}
	}
	if (cfg->answer && cfg->answer->n &&
	    (cfg->auth_users_file == NULL || *cfg->auth_users_file == '\0')) {
		buf_printf(err,
			   "%s:%d: [answer %s]: callers must authenticate: set auth_users_file "
			   "(and odmr_domains)\n",
			   path ? path : "(config)", cfg->answer->v[0].line,
			   cfg->answer->v[0].name);
		n++;
	}
	return n;
}

static int phonebook_cfg_finish(struct config *cfg, const char *path, struct buf *err)
{
	return phonebook_check(cfg->phonebook, path, err) +
	       phonebook_check(cfg->answer, path, err) + phonebook_answer_check(cfg, path, err);
}

static void phonebook_cfg_show(const struct config *cfg, FILE *out)
{
	phonebook_show(cfg->phonebook, out);
	phonebook_show(cfg->answer, out);
}

static void phonebook_cfg_release(struct config *cfg)
{
	phonebook_free(cfg->phonebook);
	phonebook_free(cfg->answer);
}

static const struct config_section phonebook_sections[] = {
    {"phonebook", 1, phonebook_cfg_open, phonebook_cfg_line},
    {"answer", 1, phonebook_cfg_answer_open, phonebook_cfg_answer_line},
};

const struct config_module phonebook_config_module = {
    .name = "phonebook",
    .sections = phonebook_sections,
    .n_sections = sizeof(phonebook_sections) / sizeof(phonebook_sections[0]),
    .finish = phonebook_cfg_finish,
    .show = phonebook_cfg_show,
    .release = phonebook_cfg_release,
};
