/* The [session] section: one parser for its keys (the retrieval and ATRN
 * keys are handed to dialup/retrieve.c), the checks after the file, and the
 * show-config block. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dialup/retrieve.h"
#include "dialup/session.h"
#include "dialup/session_config.h"
#include "dialup/turn.h"
#include "lib/xmalloc.h"
#include "link/phonebook.h"

/* --- [session] settings ---------------------------------------------------- */

enum sess_key {
	K_SCHEDULE,
	K_ENTRIES,
	K_IDLE,
	K_MAXTIME,
	K_WINDOW,
	K_RETRIEVE,
	K_DWQ,
	K_MININT,
	K_CHECK,
	K_COUNT
};

static const char *const sess_keys[K_COUNT] = {
    "schedule", "entries",	    "idle_timeout",	 "max_session_time", "session_window",
    "retrieve", "dial_when_queued", "min_dial_interval", "check_timeout",
};

/* "30s", "2m", "1h", "1d", "0"; a bare number is seconds. */
static int sess_duration(const char *v, int *out, int min, struct buf *problem)
{
	char *end;
	long n, mult = 1;

	errno = 0;
	n = strtol(v, &end, 10);
	if (*end && end[1] == '\0')
		mult = *end == 's'   ? 1
		       : *end == 'm' ? 60
		       : *end == 'h' ? 3600
		       : *end == 'd' ? 86400
				     : 0;
	else if (*end)
		mult = 0;
	if (v[0] < '0' || v[0] > '9' || errno || mult == 0 || n < min || n > 7L * 86400 / mult) {
		buf_printf(problem, "'%s' is not a duration (%s7d; s, m, h, d)", v,
			   min ? "1s to " : "0 to ");
		return -1;
	}
	*out = (int)(n * mult);
	return 0;
}

void session_config_defaults(struct session_config *sc)
{
	struct buf p = BUF_INIT;

	memset(sc, 0, sizeof(*sc));
	schedule_parse(&sc->schedule, "off", &p);
	sc->idle_timeout = 120;
	sc->max_session_time = 3600;
	sc->retrieve = xstrdup("none");
	sc->min_dial_interval = 300;
	sc->check_timeout = 30;
	retrieve_config_defaults(sc);
	buf_free(&p);
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

static int sess_set(struct session_config *sc, int k, const char *v, struct buf *problem)
{
	struct schedule s;

	switch (k) {
	case K_SCHEDULE:
		if (schedule_parse(&s, v, problem) < 0)
			return -1;
		schedule_free(&sc->schedule);
		sc->schedule = s;
		return 0;
	case K_ENTRIES:
		strlist_free(&sc->entries);
		strlist_split(&sc->entries, v);
		return 0;
	case K_IDLE:
		return sess_duration(v, &sc->idle_timeout, 1, problem);
	case K_MAXTIME:
		return sess_duration(v, &sc->max_session_time, 1, problem);
	case K_WINDOW:
		return sess_duration(v, &sc->session_window, 0, problem);
	case K_RETRIEVE:
		if (session_retrieval(v) == NULL) {
			buf_printf(problem,
				   "'%s' is not a retrieval method (none, etrn, command; "
				   "atrn is not available yet)",
				   v);
			return -1;
		}
		free(sc->retrieve);
		sc->retrieve = xstrdup(v);
		return 0;
	case K_DWQ:
		return schedule_parse_when_queued(v, &sc->dwq, &sc->dwq_count, problem);
	case K_MININT:
		return sess_duration(v, &sc->min_dial_interval, 0, problem);
	case K_CHECK:
		return sess_duration(v, &sc->check_timeout, 1, problem);
	}
	return -1;
}

int session_section_line(struct session_config *sc, const char *key, const char *value,
			 struct buf *problem)
{
	int rc = retrieve_config_line(sc, key, value, problem);

	if (rc <= 0)
		return rc;
	for (int k = 0; k < K_COUNT; k++) {
		if (strcmp(key, sess_keys[k]) != 0)
			continue;
		if (sc->set & (1u << k)) {
			buf_puts(problem, "set twice in [session]");
			return -1;
		}
		sc->set |= 1u << k;
		return sess_set(sc, k, value, problem);
	}
	buf_printf(problem, "unknown [session] setting (schedule, entries, idle_timeout, "
			    "max_session_time, session_window, retrieve, dial_when_queued, "
			    "min_dial_interval, check_timeout, etrn_domains, etrn_grace, "
			    "retrieve_command, retrieve_timeout, atrn_host, atrn_domains, "
			    "atrn_auth)");
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
	return n + retrieve_check(sc, path, err);
}

void session_config_free(struct session_config *sc)
{
	if (sc == NULL)
		return;
	retrieve_config_free(sc);
	schedule_free(&sc->schedule);
	strlist_free(&sc->entries);
	free(sc->retrieve);
	free(sc);
}

static void sess_show_duration(FILE *out, const char *key, int v)
{
	if (v && v % 3600 == 0)
		fprintf(out, "%s = %dh\n", key, v / 3600);
	else if (v && v % 60 == 0)
		fprintf(out, "%s = %dm\n", key, v / 60);
	else
		fprintf(out, "%s = %ds\n", key, v);
}

void session_show(const struct session_config *sc, FILE *out)
{
	if (sc == NULL)
		return;
	fprintf(out, "\n[session]\nschedule = %s\nentries =",
		sc->schedule.n ? sc->schedule.text : "off");
	for (size_t i = 0; i < sc->entries.n; i++)
		fprintf(out, "%s%s", i ? ", " : " ", sc->entries.v[i]);
	fputc('\n', out);
	sess_show_duration(out, "idle_timeout", sc->idle_timeout);
	sess_show_duration(out, "max_session_time", sc->max_session_time);
	sess_show_duration(out, "session_window", sc->session_window);
	fprintf(out, "retrieve = %s\n", sc->retrieve);
	if (sc->dwq == DWQ_COUNT)
		fprintf(out, "dial_when_queued = %d\n", sc->dwq_count);
	else
		fprintf(out, "dial_when_queued = %s\n", sc->dwq == DWQ_URGENT ? "urgent" : "off");
	sess_show_duration(out, "min_dial_interval", sc->min_dial_interval);
	sess_show_duration(out, "check_timeout", sc->check_timeout);
	retrieve_show(sc, out);
}

/* --- retrieval hook ----------------------------------------------------------- */

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
	       turn_config_check(cfg, path, err);
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

/* The methods live in dialup/retrieve.c. */
const struct retrieval *session_retrieval(const char *name)
{
	return retrieve_method(name);
}
