/* The [session] section: one parser for its keys (the retrieval keys are
 * handed to dialup/retrieve.c, which asks each method), the checks after the
 * file, and the show-config block. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dialup/retrieve.h"
#include "dialup/session.h"
#include "dialup/session_config.h"
#include "lib/xmalloc.h"
#include "link/phonebook.h"

/* --- [session] settings ---------------------------------------------------- */

#define SOFF(field) offsetof(struct session_config, field)
#define WEEK	    (7 * 86400)

/* schedule = every 2h | at 06:00, 18:00 | mon-fri 08:00-18:00 every 30m; ... | off */
static int sess_parse_schedule(const struct setting *s, void *base, const char *v,
			       struct buf *problem)
{
	struct session_config *sc = base;
	struct schedule sched;

	if (schedule_parse(&sched, v, problem) < 0)
		return -1;
	schedule_free(&sc->schedule);
	sc->schedule = sched;
	return 0;
}

static void sess_format_schedule(const struct setting *s, const void *base, struct buf *out)
{
	const struct session_config *sc = base;

	buf_puts(out, sc->schedule.n ? sc->schedule.text : "off");
}

static void sess_release_schedule(const struct setting *s, void *base)
{
	schedule_free(&((struct session_config *)base)->schedule);
}

/* dial_when_queued = N | urgent | off */
static int sess_parse_dwq(const struct setting *s, void *base, const char *v, struct buf *problem)
{
	struct session_config *sc = base;

	return schedule_parse_when_queued(v, &sc->dwq, &sc->dwq_count, problem);
}

static void sess_format_dwq(const struct setting *s, const void *base, struct buf *out)
{
	const struct session_config *sc = base;

	if (sc->dwq == DWQ_COUNT)
		buf_printf(out, "%d", sc->dwq_count);
	else
		buf_puts(out, sc->dwq == DWQ_URGENT ? "urgent" : "off");
}

static int sess_check_retrieve(const char *v, struct buf *problem)
{
	if (retrieve_method(v) != NULL)
		return 0;
	buf_printf(problem, "'%s' is not a retrieval method (", v);
	retrieve_method_names(problem);
	buf_puts(problem, ")");
	return -1;
}

/* The keys of [session] itself, in show-config order; the retrieval keys
 * are the retrieval methods' (the table in dialup/retrieve.c). */
static const struct setting sess_settings[SESSION_N_KEYS] = {
    {.name = "schedule",
     .type = T_CUSTOM,
     .def = "off",
     .parse = sess_parse_schedule,
     .format = sess_format_schedule,
     .release = sess_release_schedule,
     .help = "when sessions happen: every 2h, at 06:00, a weekly grid, or off"},
    {.name = "entries",
     .type = T_LIST,
     .def = "",
     .off = SOFF(entries),
     .help = "phone book entries to try, in order; empty: all, in file order"},
    {.name = "idle_timeout",
     .type = T_DURATION,
     .def = "2m",
     .min = 1,
     .max = WEEK,
     .off = SOFF(idle_timeout),
     .help = "hang up after this long without mail moving either way"},
    {.name = "max_session_time",
     .type = T_DURATION,
     .def = "1h",
     .min = 1,
     .max = WEEK,
     .off = SOFF(max_session_time),
     .help = "hang up after this long whatever is happening"},
    {.name = "session_window",
     .type = T_DURATION,
     .def = "0",
     .min = 0,
     .max = WEEK,
     .off = SOFF(session_window),
     .help = "how long a slot may be served late; 0: until the next slot (15m unscheduled)"},
    {.name = "retrieve",
     .type = T_STRING,
     .def = "none",
     .off = SOFF(retrieve),
     .check = sess_check_retrieve,
     .help = "how inbound mail is asked for: none, etrn, command, atrn, turn"},
    {.name = "dial_when_queued",
     .type = T_CUSTOM,
     .def = "off",
     .parse = sess_parse_dwq,
     .format = sess_format_dwq,
     .help = "dial when N messages are queued for the link, when one is urgent, or off"},
    {.name = "min_dial_interval",
     .type = T_DURATION,
     .def = "5m",
     .min = 0,
     .max = WEEK,
     .off = SOFF(min_dial_interval),
     .help = "least time between two sessions started by queued mail"},
    {.name = "check_timeout",
     .type = T_DURATION,
     .def = "30s",
     .min = 1,
     .max = WEEK,
     .off = SOFF(check_timeout),
     .help = "time the link check (DNS and connect to the smarthost) may take"},
    {.name = "hangup_when_done",
     .type = T_BOOL,
     .def = "yes",
     .off = SOFF(hangup_when_done),
     .help = "hang up as soon as the mail state says the work is done, not after idle_timeout"},
    {.name = "done_grace",
     .type = T_DURATION,
     .def = "5s",
     .min = 0,
     .max = WEEK,
     .off = SOFF(done_grace),
     .help = "after etrn or command retrieval, quiet time before the work counts as done"},
};

static const struct settings_table sess_table = {"[session]", sess_settings, SESSION_N_KEYS};

void session_config_defaults(struct session_config *sc)
{
	memset(sc, 0, sizeof(*sc));
	settings_defaults(&sess_table, sc);
	retrieve_config_defaults(sc);
}

int session_section_open(struct session_config **sc, int line, struct buf *problem)
{
	if (*sc != NULL) {
		buf_printf(problem, "only one [session] section (the first is at line %d)",
			   (*sc)->line);
		return -1;
	}
	*sc = xcalloc(1, sizeof(**sc));
	session_config_defaults(*sc);
	(*sc)->line = line;
	return 0;
}

int session_section_line(struct session_config *sc, const char *key, const char *value,
			 struct buf *problem)
{
	int rc = retrieve_config_line(sc, key, value, problem);

	if (rc <= 0)
		return rc;
	rc = settings_parse(&sess_table, sc, sc->given, key, value, problem);
	if (rc <= 0)
		return rc;
	buf_puts(problem, "unknown [session] setting (");
	settings_names(&sess_table, problem);
	retrieve_config_names(problem);
	buf_puts(problem, ")");
	return -1;
}

int session_check(const struct session_config *sc, const struct phonebook *pb, const char *path,
		  struct buf *err)
{
	int n = 0;

	if (sc == NULL)
		return 0;
	for (size_t i = 0; i < sc->entries.n; i++) {
		if (phonebook_find(pb, sc->entries.v[i]) == NULL) {
			buf_printf(err, "%s:%d: [session]: entries: no [phonebook %s]\n", path,
				   sc->line, sc->entries.v[i]);
			n++;
		}
	}
	if ((pb == NULL || pb->n == 0) && (sc->schedule.n || sc->dwq != DWQ_OFF)) {
		buf_printf(err, "%s:%d: [session]: a schedule needs a [phonebook NAME] entry\n",
			   path, sc->line);
		n++;
	}
	return n;
}

void session_config_free(struct session_config *sc)
{
	if (sc == NULL)
		return;
	retrieve_config_free(sc);
	settings_release(&sess_table, sc);
	free(sc);
}

void session_show(const struct session_config *sc, FILE *out)
{
	if (sc == NULL)
		return;
	fputs("\n[session]\n", out);
	settings_show(&sess_table, sc, out);
	retrieve_show(sc, out);
}

/* --- the configuration module ([session]) ------------------------------- */

static int session_cfg_open(struct config *cfg, const char *arg, int line, struct buf *problem)
{
	return session_section_open(&cfg->session, line, problem);
}

static int session_cfg_line(struct config *cfg, const char *key, const char *value,
			    struct buf *problem)
{
	return session_section_line(cfg->session, key, value, problem);
}

static int session_cfg_finish(struct config *cfg, const char *path, struct buf *err)
{
	return session_check(cfg->session, cfg->phonebook, path, err) +
	       retrieve_check(cfg, cfg->session, path, err);
}

static void session_cfg_show(const struct config *cfg, FILE *out)
{
	session_show(cfg->session, out);
}

static void session_cfg_release(struct config *cfg)
{
	session_config_free(cfg->session);
}

static const struct config_section session_sections[] = {
    {"session", 0, session_cfg_open, session_cfg_line},
};

const struct config_module session_config_module = {
    .name = "session",
    .sections = session_sections,
    .n_sections = 1,
    .finish = session_cfg_finish,
    .show = session_cfg_show,
    .release = session_cfg_release,
};
