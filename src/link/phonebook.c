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

#define PBW_DIAL   F_OWN	/* a field of [phonebook NAME] */
#define PBW_ANSWER (F_OWN << 1) /* a field of [answer NAME] */
#define PBW_BOTH   (PBW_DIAL | PBW_ANSWER)

#define POFF(f) offsetof(struct phonebook_entry, f)
#define HOUR_MS (3600LL * 1000)

static const char *const pb_type_names[] = {"modem", "command", "always", NULL};
static const char *const pb_data_names[] = {"none", "ppp", "direct", "command", NULL};
static const char *const pb_flow_names[] = {"none", "hardware", NULL};
static const int pb_speeds[] = {300,   1200,  2400,   4800,   9600,   19200,
				38400, 57600, 115200, 230400, 460800, 921600};

static int pb_parse_init(const struct setting *s, void *base, const char *v, struct buf *problem);
static int pb_parse_numbers(const struct setting *s, void *base, const char *v,
			    struct buf *problem);
static void pb_format_list(const struct setting *s, const void *base, struct buf *out);
static void pb_release_list(const struct setting *s, void *base);
static int pb_parse_speed(const struct setting *s, void *base, const char *v, struct buf *problem);
static void pb_format_speed(const struct setting *s, const void *base, struct buf *out);

#define PB_STR(n, d, f, w)                                                                         \
	{                                                                                          \
		.name = n, .type = T_STRING, .def = d, .off = POFF(f), .flags = w                  \
	}
#define PB_NUM(n, t, d, lo, hi, f, w)                                                              \
	{                                                                                          \
		.name = n, .type = t, .def = d, .min = lo, .max = hi, .off = POFF(f), .flags = w   \
	}
#define PB_ENUM(n, names_, d, f, w)                                                                \
	{                                                                                          \
		.name = n, .type = T_ENUM, .def = d, .off = POFF(f), .flags = w, .names = names_   \
	}
#define PB_LIST(n, parse_, d, f, w)                                                                \
	{                                                                                          \
		.name = n, .type = T_CUSTOM, .def = d, .off = POFF(f), .flags = w,                 \
		.parse = parse_, .format = pb_format_list, .release = pb_release_list              \
	}

/* The fields of an entry, in show-config order, in the settings table form
 * of mail/settings.h; flags say which sections have the field. */
static const struct setting pb_fields[] = {
    PB_ENUM("type", pb_type_names, "modem", type, PBW_DIAL),
    PB_STR("device", "", device, PBW_BOTH),
    {.name = "speed",
     .type = T_CUSTOM,
     .def = "115200",
     .off = POFF(speed),
     .flags = PBW_BOTH,
     .parse = pb_parse_speed,
     .format = pb_format_speed},
    PB_LIST("init", pb_parse_init, "ATZ", init, PBW_BOTH),
    PB_LIST("numbers", pb_parse_numbers, "", numbers, PBW_DIAL),
    PB_STR("dial_prefix", "ATDT", dial_prefix, PBW_DIAL),
    PB_NUM("dial_timeout", T_MS, "60s", 100, HOUR_MS, dial_timeout_ms, PBW_DIAL),
    PB_NUM("at_timeout", T_MS, "3s", 50, 60000, at_timeout_ms, PBW_BOTH),
    PB_NUM("redial_attempts", T_INT, "3", 1, 100, redial_attempts, PBW_DIAL),
    PB_NUM("redial_interval", T_MS, "30s", 0, HOUR_MS, redial_interval_ms, PBW_DIAL),
    PB_ENUM("flow_control", pb_flow_names, "hardware", hwflow, PBW_BOTH),
    PB_ENUM("data", pb_data_names, "none", data, PBW_DIAL),
    PB_STR("pppd", "/usr/sbin/pppd", pppd, PBW_DIAL),
    PB_STR("ppp_options", "", ppp_options, PBW_DIAL),
    PB_STR("ppp_up_file", "", ppp_up_file, PBW_DIAL),
    PB_STR("up", "", up, PBW_DIAL),
    PB_STR("down", "", down, PBW_DIAL),
    PB_STR("check", "", check, PBW_DIAL),
    PB_NUM("up_timeout", T_MS, "60s", 100, HOUR_MS, up_timeout_ms, PBW_DIAL),
    PB_NUM("bandwidth", T_INT, "0", 0, 2000000000, bandwidth, PBW_DIAL),
    PB_NUM("rings", T_INT, "1", 1, 20, rings, PBW_ANSWER),
    PB_NUM("answer_timeout", T_MS, "60s", 1000, 600000, answer_timeout_ms, PBW_ANSWER),
};

#define PB_NFIELDS (sizeof(pb_fields) / sizeof(pb_fields[0]))

static const struct settings_table pb_table = {"[phonebook]", pb_fields, PB_NFIELDS};

/* Parser bookkeeping: the line each field of each entry was set on. */
struct pb_private {
	struct phonebook pb;
	const char *section; /* "phonebook" or "answer" */
	int (*set_at)[PB_NFIELDS];
};

#define ENTRY_FIELD(e, f, type)	 ((type *)((char *)(e) + (f)->off))
#define ENTRY_CFIELD(e, f, type) ((const type *)((const char *)(e) + (f)->off))

const char *phonebook_type_name(enum pb_type t)
{
	return (unsigned)t < 3 ? pb_type_names[t] : "?";
}

const char *phonebook_data_name(enum pb_data d)
{
	return (unsigned)d < 4 ? pb_data_names[d] : "?";
}

/* Replaces the list of row s in base with l (on success) or frees l. */
static int pb_set_list(const struct setting *s, void *base, struct strlist *l, int rc)
{
	if (rc < 0) {
		strlist_free(l);
		return -1;
	}
	strlist_free(ENTRY_FIELD(base, s, struct strlist));
	*ENTRY_FIELD(base, s, struct strlist) = *l;
	return 0;
}

/* "ATZ | AT&F E0 V1": each part trimmed, non-empty, starting with AT. */
static int pb_parse_init(const struct setting *s, void *base, const char *v, struct buf *problem)
{
	char *copy = xstrdup(v), *save = NULL, *part;
	struct strlist list = {0}, *out = &list;
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
	return pb_set_list(s, base, out, rc);
}

/* Numbers are separated by commas (blanks inside a number are kept for
 * reading and left out when dialing); dial string characters of the Hayes
 * command set only. */
static int pb_parse_numbers(const struct setting *s, void *base, const char *v, struct buf *problem)
{
	char *copy = xstrdup(v), *save = NULL, *part;
	struct strlist list = {0}, *out = &list;

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
			return pb_set_list(s, base, out, -1);
		}
	}
	return pb_set_list(s, base, out, 0);
}

/* init with " | " between the strings, numbers with ", ". */
static void pb_format_list(const struct setting *s, const void *base, struct buf *out)
{
	const struct strlist *l = ENTRY_CFIELD(base, s, struct strlist);

	for (size_t j = 0; j < l->n; j++)
		buf_printf(out, "%s%s", j ? (s->parse == pb_parse_init ? " | " : ", ") : "",
			   l->v[j]);
}

static void pb_release_list(const struct setting *s, void *base)
{
	strlist_free(ENTRY_FIELD(base, s, struct strlist));
}

static int pb_parse_speed(const struct setting *s, void *base, const char *v, struct buf *problem)
{
	char *end;
	long n = strtol(v, &end, 10);

	for (size_t i = 0; *v && *end == '\0' && i < sizeof(pb_speeds) / sizeof(pb_speeds[0]); i++)
		if (pb_speeds[i] == n) {
			*ENTRY_FIELD(base, s, int) = (int)n;
			return 0;
		}
	buf_printf(problem, "'%s' is not a serial port speed (300 ... 921600, e.g. 115200)", v);
	return -1;
}

static void pb_format_speed(const struct setting *s, const void *base, struct buf *out)
{
	buf_printf(out, "%d", *ENTRY_CFIELD(base, s, int));
}

static void pb_entry_free(struct phonebook_entry *e)
{
	settings_release(&pb_table, e);
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
	settings_defaults(&pb_table, e);
	if (pb_where(pp) == PBW_ANSWER)
		e->type = PB_ANSWER;
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
		if (strcmp(pb_fields[i].name, key) == 0 && (pb_fields[i].flags & pb_where(pp)))
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
	return settings_parse_value(&pb_fields[i], e, value, problem);
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
			if (!(pb_fields[j].flags & pb_where(pp)))
				continue;
			buf_reset(&v);
			settings_format(&pb_fields[j], &pb->v[i], &v);
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
