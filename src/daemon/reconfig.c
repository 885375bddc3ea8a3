/* Reading the configuration again while running: see reconfig.h. */
#include <stdlib.h>
#include <string.h>

#include "daemon/reconfig.h"
#include "lib/log.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"

#define RECONFIG_POLL_S 1 /* how often a waiting configuration looks at the session */

/* Settings read once at start (sockets bound, tables sized, threads and
 * privileges set up): a reload keeps their running values and says that a
 * restart is needed. Names that are not settings of this build never
 * match. */
static const char *const restart_only[] = {
    "listen",
    "odmr_listen",
    "http_listen",
    "max_connections",
    "max_outbound_connections",
    "dns_servers",
    "lock_dir",
    "dedup_window",
    "syslog",
    "user",
    "group",
    "run_as_root",
    "supplementary_groups",
    "admin_group",
};

struct reconfig {
	struct event_base *base;
	struct config *live;
	struct reconfig_hooks hooks;
	struct config *pending; /* loaded, waiting for the end of a session */
	struct strlist keep;	/* restart-only settings that changed: keep running values */
	struct event *ev_wait;
	struct config **retired; /* replaced configurations, freed at exit */
	size_t n_retired;
};

static int restart_needed(const char *name)
{
	for (size_t i = 0; i < sizeof(restart_only) / sizeof(restart_only[0]); i++)
		if (strcmp(restart_only[i], name) == 0)
			return 1;
	return 0;
}

/* The new configuration becomes the live one; the old one is retired.
 * [answer] lines stay as they started (their threads point into them). */
static void reconfig_apply(struct reconfig *r, struct config *fresh)
{
	struct config old;
	struct phonebook *answer;

	for (size_t i = 0; i < r->keep.n; i++)
		config_keep(fresh, r->live, r->keep.v[i]);
	strlist_free(&r->keep);
	old = *r->live;
	answer = old.answer;

	old.answer = fresh->answer;
	*r->live = *fresh;
	r->live->answer = answer;
	*fresh = old;
	r->retired = xrealloc(r->retired, (r->n_retired + 1) * sizeof(*r->retired));
	r->retired[r->n_retired++] = fresh;
	if (r->hooks.applied)
		r->hooks.applied(r->hooks.arg);
	log_info("reload: the new configuration is in force");
}

static void reconfig_on_wait(evutil_socket_t fd, short what, void *arg)
{
	struct reconfig *r = arg;
	struct timeval tv = {RECONFIG_POLL_S, 0};

	if (r->pending == NULL)
		return;
	if (r->hooks.busy && r->hooks.busy(r->hooks.arg)) {
		evtimer_add(r->ev_wait, &tv);
		return;
	}
	reconfig_apply(r, r->pending);
	r->pending = NULL;
}

struct reconfig *reconfig_new(struct event_base *base, struct config *live,
			      const struct reconfig_hooks *hooks)
{
	struct reconfig *r = xcalloc(1, sizeof(*r));

	r->base = base;
	r->live = live;
	if (hooks)
		r->hooks = *hooks;
	r->ev_wait = evtimer_new(base, reconfig_on_wait, r);
	return r;
}

/* Sorts what changed into what applies now and what needs a restart
 * (r->keep: their running values stay); lists them in out. */
static void reconfig_sort(struct reconfig *r, struct config *fresh, struct buf *out)
{
	struct strlist changed = {0}, now = {0};

	strlist_free(&r->keep);
	config_changes(r->live, fresh, &changed);
	for (size_t i = 0; i < changed.n; i++)
		strlist_add(restart_needed(changed.v[i]) ? &r->keep : &now, changed.v[i]);
	buf_puts(out, now.n ? "configuration reloaded, changed:"
			    : "configuration reloaded, no setting changed");
	for (size_t i = 0; i < now.n; i++)
		buf_printf(out, "%s %s", i ? "," : "", now.v[i]);
	if (r->keep.n) {
		buf_puts(out, "; needs a restart to change:");
		for (size_t i = 0; i < r->keep.n; i++)
			buf_printf(out, "%s %s", i ? "," : "", r->keep.v[i]);
	}
	strlist_free(&changed);
	strlist_free(&now);
}

int reconfig_reload(struct reconfig *r, struct buf *out)
{
	struct config *fresh;
	struct buf err = BUF_INIT;

	if (r->live->path == NULL) {
		buf_puts(out, "configuration: embedded defaults, nothing to read");
		return 0;
	}
	fresh = xcalloc(1, sizeof(*fresh));
	if (config_load(fresh, r->live->path, &err) < 0) {
		while (err.len > 0 && err.data[err.len - 1] == '\n')
			err.data[--err.len] = '\0';
		buf_printf(out, "configuration refused, the running one stays: %s", buf_cstr(&err));
		buf_free(&err);
		free(fresh);
		return -1;
	}
	buf_free(&err);
	if (r->pending) { /* a newer file replaces one still waiting */
		config_free(r->pending);
		free(r->pending);
		r->pending = NULL;
	}
	/* Applied even when no setting changed: a file it names (the AUTH
	 * users) may have. */
	reconfig_sort(r, fresh, out);
	if (r->hooks.busy && r->hooks.busy(r->hooks.arg)) {
		struct timeval tv = {RECONFIG_POLL_S, 0};
		r->pending = fresh;
		evtimer_add(r->ev_wait, &tv);
		buf_puts(out, "; in force when the session in progress ends");
		return 0;
	}
	reconfig_apply(r, fresh);
	return 0;
}

int reconfig_pending(const struct reconfig *r)
{
	return r->pending != NULL;
}

void reconfig_free(struct reconfig *r)
{
	if (r == NULL)
		return;
	if (r->pending) {
		config_free(r->pending);
		free(r->pending);
	}
	for (size_t i = 0; i < r->n_retired; i++) {
		config_free(r->retired[i]);
		free(r->retired[i]);
	}
	free(r->retired);
	strlist_free(&r->keep);
	event_free(r->ev_wait);
	free(r);
}
