/* The attempt engine behind link.h: for each entry, each number, up to
 * redial_attempts calls; transient causes redial, modem trouble recovers the
 * modem and retries, configuration causes skip the entry for this window.
 * What an attempt is belongs to the entry's link type (link_type.h: one
 * file a type, listed in link_types below); this file only decides and logs.
 * Invariant: every failed attempt produces exactly one 4106 event whose text
 * carries the cause in words, and link_up never outlives its round. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/event.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "link/link_type.h"

#define LINK_MAX_MODEM_TROUBLE 2 /* consecutive modem troubles before giving up an entry */

/* The link types; an entry whose type has no row is a modem, the first. */
static const struct link_type *const link_types[] = {
    &link_type_modem,
    &link_type_command,
    &link_type_always,
};

/* The state of one round. */
struct engine {
	const struct link_opts *o;
	struct link_report *rep;
};

/* What the engine does after a failure, in words for the event. */
enum next_step { NEXT_REDIAL, NEXT_NUMBER, NEXT_ENTRY, NEXT_RECOVER, NEXT_SKIP };

static int link_hold_ms(const struct engine *g)
{
	return g->o->dtr_hold_ms > 0 ? g->o->dtr_hold_ms : 500;
}

static void link_progress(const struct engine *g, const char *text)
{
	if (g->o->progress)
		g->o->progress(g->o->arg, text);
}

static void link_event(const struct engine *g, int id, const char *const *kv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes an event and hands the same text to the progress hook. */
static void link_event(const struct engine *g, int id, const char *const *kv, const char *fmt, ...)
{
	struct buf text = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	event_logkv(id, kv, "%s", buf_cstr(&text));
	if (g)
		link_progress(g, buf_cstr(&text));
	buf_free(&text);
}

/* 0 when there is time left for ms more; -1 when the window closes first. */
static int link_time_left(const struct engine *g, int ms)
{
	if (g->o->deadline_usec == 0)
		return 0;
	return clock_usec() + (int64_t)ms * 1000 < g->o->deadline_usec ? 0 : -1;
}

/* The pause between attempts; -1 when the round must stop. */
static int link_pause(struct engine *g, int ms)
{
	if (link_time_left(g, ms) < 0) {
		g->rep->window_closed = 1;
		return -1;
	}
	if (g->o->pause) {
		if (g->o->pause(g->o->arg, ms) != 0) {
			g->rep->window_closed = 1;
			return -1;
		}
	} else if (ms > 0)
		clock_sleep_ms(ms);
	return 0;
}

static const char *link_next_words(enum next_step next, int interval_ms, char *out, size_t len)
{
	switch (next) {
	case NEXT_REDIAL:
		snprintf(out, len, "redialling in %d.%ds", interval_ms / 1000,
			 (interval_ms % 1000) / 100);
		break;
	case NEXT_NUMBER:
		snprintf(out, len, "trying the next number");
		break;
	case NEXT_ENTRY:
		snprintf(out, len, "trying the next entry");
		break;
	case NEXT_RECOVER:
		snprintf(out, len, "recovering the modem");
		break;
	case NEXT_SKIP:
		snprintf(out, len, "not dialing this entry again this window");
		break;
	}
	return out;
}

/* Records and logs one failed attempt (event 4106). */
static void link_failed(struct engine *g, const struct phonebook_entry *e, const char *number,
			int n, int of, const struct cause *c, enum next_step next)
{
	struct link_report *rep = g->rep;
	struct link_attempt *a;
	struct buf words = BUF_INIT, where = BUF_INIT;
	char nbuf[16], nextw[64];
	const char *kv[] = {"entry",   e->name,
			    "number",  number[0] ? number : NULL,
			    "attempt", nbuf,
			    "cause",   cause_name(c->id),
			    "class",   cause_class_name(cause_class(c->id)),
			    NULL};

	rep->v = xrealloc(rep->v, (rep->n + 1) * sizeof(*rep->v));
	a = &rep->v[rep->n++];
	a->entry = xstrdup(e->name);
	a->number = xstrdup(number);
	a->n = n;
	a->of = of;
	a->cause = *c;
	a->at_usec = clock_usec();
	snprintf(nbuf, sizeof(nbuf), "%d", n);
	cause_describe(c, &words);
	if (number[0])
		buf_printf(&where, "number %s, ", number);
	buf_printf(&where, "attempt %d of %d", n, of);
	link_event(g, EV_DIALUP_FAILED, kv,
		   "The dial-up connection '%s' could not be made: %s: %s [%s]; %s", e->name,
		   buf_cstr(&where), buf_cstr(&words), cause_class_name(cause_class(c->id)),
		   link_next_words(next, e->redial_interval_ms, nextw, sizeof(nextw)));
	buf_free(&words);
	buf_free(&where);
}

static void link_skipped(struct engine *g, const struct phonebook_entry *e, const struct cause *c)
{
	struct buf words = BUF_INIT;
	const char *kv[] = {"entry", e->name, "cause", cause_name(c->id), NULL};

	cause_describe(c, &words);
	link_event(g, EV_DIALUP_ENTRY_SKIPPED, kv,
		   "Phone book entry '%s' is not dialed again in this window: %s (%s); trying "
		   "alternates",
		   e->name, buf_cstr(&words), cause_class_name(cause_class(c->id)));
	buf_free(&words);
}

static void link_dialing(struct engine *g, const struct phonebook_entry *e, const char *number,
			 int n, int of, int after_recovery)
{
	char nbuf[16];
	const char *kv[] = {"entry",   e->name, "number", number[0] ? number : NULL,
			    "attempt", nbuf,	NULL};

	snprintf(nbuf, sizeof(nbuf), "%d", n);
	if (number[0])
		link_event(g, EV_DIALUP_DIALING, kv,
			   "Dialing phone book entry '%s': number %s, attempt %d of %d%s", e->name,
			   number, n, of, after_recovery ? " (after modem recovery)" : "");
	else
		link_event(g, EV_DIALUP_DIALING, kv,
			   "Bringing up phone book entry '%s' (%s link), attempt %d of %d", e->name,
			   phonebook_type_name(e->type), n, of);
}

/* The caller's mail-path check, if any. */
static int link_check_path(struct engine *g, const struct phonebook_entry *e, struct cause *c)
{
	struct buf why = BUF_INIT;
	int rc = 0;

	if (g->o->check && g->o->check(g->o->arg, e->name, &why) < 0) {
		cause_set(c, CAUSE_LINK_CHECK, buf_cstr(&why));
		rc = -1;
	}
	buf_free(&why);
	return rc;
}

static const struct link_type *link_type_of(const struct phonebook_entry *e)
{
	const char *name = phonebook_type_name(e->type);

	for (size_t i = 0; i < sizeof(link_types) / sizeof(link_types[0]); i++)
		if (strcmp(link_types[i]->name, name) == 0)
			return link_types[i];
	return link_types[0];
}

static struct link *link_new(const struct phonebook_entry *e)
{
	struct link *l = xcalloc(1, sizeof(*l));

	l->e = e;
	l->type = link_type_of(e);
	if (l->type->state_size)
		l->state = xcalloc(1, l->type->state_size);
	l->start_usec = clock_usec();
	return l;
}

static void link_free(struct link *l)
{
	free(l->state);
	free(l);
}

static void link_connected(struct engine *g, struct link *l)
{
	char speed[16];
	const char *kv[] = {"entry", l->e->name, "number", l->number[0] ? l->number : NULL,
			    "speed", speed,	 NULL};

	snprintf(speed, sizeof(speed), "%d", l->speed);
	if (l->type->dials)
		link_event(g, EV_DIALUP_CONNECTED, kv,
			   "The dial-up connection '%s' was established: number %s, %s (%d bps), "
			   "data phase %s",
			   l->e->name, l->number, l->connect, l->speed,
			   phonebook_data_name(l->e->data));
	else
		link_event(g, EV_DIALUP_CONNECTED, kv,
			   "The dial-up connection '%s' was established (%s link)", l->e->name,
			   phonebook_type_name(l->e->type));
}

/* --- the attempts of one entry -------------------------------------------- */

/* Recovery after modem trouble, with its event; 0 when the modem answers. */
static int link_recover(struct engine *g, struct link *l, const struct cause *why)
{
	struct cause c = {0};
	struct buf words = BUF_INIT;
	int rc;

	g->rep->recoveries++;
	cause_describe(why, &words);
	rc = l->type->recover(l, link_hold_ms(g), &c);
	if (rc == 0) {
		const char *kv[] = {"entry", l->e->name, "result", "recovered", NULL};
		g->rep->recoveries_ok++;
		link_event(g, EV_DIALUP_RECOVERY, kv,
			   "Modem of phone book entry '%s' (%s) recovered after %s: DTR dropped, "
			   "device reopened, init answered OK",
			   l->e->name, l->e->device, buf_cstr(&words));
	} else {
		struct buf now = BUF_INIT;
		const char *kv[] = {"entry", l->e->name, "result", "failed", NULL};
		cause_describe(&c, &now);
		link_event(g, EV_DIALUP_RECOVERY, kv,
			   "Modem of phone book entry '%s' (%s) could not be recovered after %s: "
			   "DTR dropped and device reopened, but %s",
			   l->e->name, l->e->device, buf_cstr(&words), buf_cstr(&now));
		buf_free(&now);
	}
	buf_free(&words);
	return rc;
}

/* One attempt: the type's call, what runs on the line, the caller's
 * mail-path check; a failure undoes what the attempt started. 0 when up. */
static int link_attempt(struct engine *g, struct link *l, const char *number, struct cause *c)
{
	const struct link_type *t = l->type;

	snprintf(l->number, sizeof(l->number), "%s", number);
	if (t->call(l, number, c) < 0)
		goto fail;
	if (l->connect[0])
		link_progress(g, l->connect);
	if ((t->start && t->start(l, c) < 0) || link_check_path(g, l->e, c) < 0)
		goto fail;
	return 0;
fail:
	if (t->abort)
		t->abort(l, link_hold_ms(g));
	return -1;
}

/* After a failed attempt k: what next, given the class and where we are.
 * A type that cannot recover redials after trouble of class CC_MODEM. */
static enum next_step link_decide(const struct link *l, const struct cause *c, int k,
				  int last_number, int troubles)
{
	switch (cause_class(c->id)) {
	case CC_CONFIG:
		return NEXT_SKIP;
	case CC_MODEM:
		if (l->type->recover)
			return troubles >= LINK_MAX_MODEM_TROUBLE ? NEXT_ENTRY : NEXT_RECOVER;
		break;
	default:
		break;
	}
	if (k < l->e->redial_attempts)
		return NEXT_REDIAL;
	return last_number ? NEXT_ENTRY : NEXT_NUMBER;
}

/* Carries out next after a failed attempt *k: 0 go on (*k and *recovered
 * set for the following attempt), 1 the entry is done, -1 the round is over. */
static int link_next(struct engine *g, struct link *l, enum next_step next, const struct cause *c,
		     int *k, int *recovered)
{
	*recovered = 0;
	switch (next) {
	case NEXT_SKIP:
		link_skipped(g, l->e, c);
		return 1;
	case NEXT_ENTRY:
		return 1;
	case NEXT_RECOVER:
		if (link_recover(g, l, c) < 0)
			return 1;
		*recovered = 1;
		(*k)--; /* the retry after recovery is the same attempt */
		return 0;
	case NEXT_REDIAL:
		return link_pause(g, l->e->redial_interval_ms) < 0 ? -1 : 0;
	case NEXT_NUMBER:
		*k = l->e->redial_attempts; /* on to the next number */
		return 0;
	}
	return 0;
}

/* Each number (one "" for a type that does not dial), up to redial_attempts
 * each. 1 up, 0 entry done (try the next), -1 round over. */
static int link_attempts(struct engine *g, struct link *l)
{
	const struct phonebook_entry *e = l->e;
	size_t n = l->type->dials ? e->numbers.n : 1;
	struct cause c = {0};
	int troubles = 0, recovered = 0;

	for (size_t ni = 0; ni < n; ni++) {
		const char *number = l->type->dials ? e->numbers.v[ni] : "";
		for (int k = 1; k <= e->redial_attempts; k++) {
			enum next_step next;
			int rc;
			if (link_time_left(g, 0) < 0) {
				g->rep->window_closed = 1;
				return -1;
			}
			link_dialing(g, e, number, k, e->redial_attempts, recovered);
			if (link_attempt(g, l, number, &c) == 0)
				return 1;
			troubles = cause_class(c.id) == CC_MODEM ? troubles + 1 : 0;
			next = link_decide(l, &c, k, ni + 1 == n, troubles);
			link_failed(g, e, number, k, e->redial_attempts, &c, next);
			rc = link_next(g, l, next, &c, &k, &recovered);
			if (rc != 0)
				return rc > 0 ? 0 : -1;
		}
	}
	return 0;
}

/* The device could not be opened: one failed attempt, and for a fault of
 * the configuration the entry is skipped for the window. */
static void link_open_failed(struct engine *g, const struct phonebook_entry *e,
			     const struct cause *c)
{
	int config = cause_class(c->id) == CC_CONFIG;

	link_failed(g, e, "", 1, 1, c, config ? NEXT_SKIP : NEXT_ENTRY);
	if (config)
		link_skipped(g, e, c);
}

/* One entry: 1 up (*out set), 0 entry done (try the next), -1 round over. */
static int link_try(struct engine *g, const struct phonebook_entry *e, struct link **out)
{
	struct link *l = link_new(e);
	struct cause c = {0};
	int rc;

	if (l->type->call == NULL) { /* up without an attempt */
		*out = l;
		return 1;
	}
	if (l->type->open && l->type->open(l, g->o->lock_dir, &c) < 0) {
		link_open_failed(g, e, &c);
		link_free(l);
		return 0;
	}
	rc = link_attempts(g, l);
	if (rc == 1) {
		/* Event 4102 counts a link's time from the opening of its
		 * device (dialling included), or without one from now. */
		if (l->type->open == NULL)
			l->start_usec = clock_usec();
		*out = l;
		return 1;
	}
	if (l->type->close)
		l->type->close(l);
	link_free(l);
	return rc;
}

/* --- the round ---------------------------------------------------------- */

static void link_round_failed(struct engine *g)
{
	struct buf sum = BUF_INIT;

	link_report_summary(g->rep, &sum);
	link_event(g, EV_DIALUP_ROUND_FAILED, NULL,
		   "No dial-up connection could be made in this round: %s",
		   sum.len ? buf_cstr(&sum) : "no entry to dial");
	buf_free(&sum);
}

int link_up(const struct phonebook_entry *const *entries, size_t n, const struct link_opts *o,
	    struct link **out, struct link_report *rep)
{
	struct engine g = {o, rep};

	*out = NULL;
	memset(rep, 0, sizeof(*rep));
	for (size_t i = 0; i < n; i++) {
		int rc = link_try(&g, entries[i], out);
		if (rc == 1) {
			link_connected(&g, *out);
			return 0;
		}
		if (rc < 0)
			break;
	}
	if (rep->window_closed)
		link_progress(&g, "The session window closed; no further attempts in this round");
	else
		link_round_failed(&g);
	return -1;
}

void link_report_free(struct link_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		free(rep->v[i].entry);
		free(rep->v[i].number);
	}
	free(rep->v);
	memset(rep, 0, sizeof(*rep));
}

void link_report_summary(const struct link_report *rep, struct buf *out)
{
	for (size_t i = 0; i < rep->n; i++) {
		size_t j;
		for (j = i + 1; j < rep->n; j++)
			if (strcmp(rep->v[j].entry, rep->v[i].entry) == 0)
				break;
		if (j < rep->n)
			continue; /* a later attempt of this entry is the one to show */
		if (out->len)
			buf_puts(out, "; ");
		buf_printf(out, "%s: ", rep->v[i].entry);
		cause_describe(&rep->v[i].cause, out);
	}
}

/* --- an up link ---------------------------------------------------------- */

const struct phonebook_entry *link_entry(const struct link *l)
{
	return l->e;
}

const char *link_number(const struct link *l)
{
	return l->number;
}

int link_speed(const struct link *l)
{
	return l->speed;
}

const char *link_connect_text(const struct link *l)
{
	return l->connect;
}

int link_fd(const struct link *l)
{
	return l->type->fd ? l->type->fd(l) : -1;
}

int link_alive(struct link *l, struct cause *c)
{
	return l->type->alive ? l->type->alive(l, c) : 0;
}

void link_down(struct link *l, const char *reason)
{
	const char *kv[3] = {"entry", NULL, NULL};
	int64_t secs;

	if (l == NULL)
		return;
	kv[1] = l->e->name;
	if (l->type->down)
		l->type->down(l);
	if (l->type->close)
		l->type->close(l);
	secs = (clock_usec() - l->start_usec) / 1000000;
	event_logkv(EV_DIALUP_HUNG_UP, kv,
		    "The dial-up connection '%s' was hung up after %lld s: %s", l->e->name,
		    (long long)secs, reason ? reason : "session ended");
	link_free(l);
}
