/* The retrieval methods as one family: the table, the shared key
 * retrieve_timeout, and what every job does (events 4121, 4123, the end).
 * Invariant: nothing outside reaches a method but through this table. */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/event.h"
#include "dialup/retrieve.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

#define RJ_TICK_MS 250 /* inbound-session and child checks */

/* --- the table ------------------------------------------------------------ */

static struct retrieve_job *retrieve_none_run(const struct retrieval_ctx *ctx)
{
	ctx->done(1, "no inbound retrieval configured (retrieve = none)", ctx->arg);
	return NULL;
}

static const struct retrieval none_method = {
    .name = "none", .end_known = 1, .run = retrieve_none_run};

/* Each defined in the file of its name. */
extern const struct retrieval etrn_method, command_method, atrn_method, turn_method;

static const struct retrieval *const retrieve_methods[] = {
    &none_method, &etrn_method, &command_method, &atrn_method, &turn_method,
};
#define N_METHODS (sizeof(retrieve_methods) / sizeof(retrieve_methods[0]))

const struct retrieval *retrieve_method(const char *name)
{
	for (size_t i = 0; i < N_METHODS; i++)
		if (strcasecmp(retrieve_methods[i]->name, name) == 0)
			return retrieve_methods[i];
	return NULL;
}

/* --- settings: the shared keys, then each method's -------------------------- */

#define DAY 86400

/* retrieve_timeout: the connection and each reply of etrn, atrn and turn,
 * the command's run time (command), and the line's timeout (data = direct,
 * at least 5 min). */
static const struct setting shared_settings[] = {
    {.name = "retrieve_timeout",
     .type = T_DURATION,
     .def = "2m",
     .min = 1,
     .max = DAY,
     .off = offsetof(struct session_config, retrieve_timeout),
     .help = "the longest wait for a retrieval's connection and each reply, or its command"},
};
static const struct settings_table shared_table = {"[session]", shared_settings, 1};

/* The tables of retrieval keys in [session] order: the shared one, then
 * each method's; i-th table or NULL past the end. */
static const struct settings_table *retrieve_table(size_t i)
{
	if (i == 0)
		return &shared_table;
	for (size_t k = 0; k < N_METHODS; k++)
		if (retrieve_methods[k]->settings && --i == 0)
			return retrieve_methods[k]->settings;
	return NULL;
}

void retrieve_method_names(struct buf *out)
{
	for (size_t i = 0; i < N_METHODS; i++)
		buf_printf(out, "%s%s", i ? ", " : "", retrieve_methods[i]->name);
}

void retrieve_config_defaults(struct session_config *sc)
{
	const struct settings_table *t;

	for (size_t i = 0; (t = retrieve_table(i)) != NULL; i++)
		settings_defaults(t, sc);
}

int retrieve_config_line(struct session_config *sc, const char *key, const char *value,
			 struct buf *problem)
{
	const struct settings_table *t;
	size_t given = 0;
	int rc;

	for (size_t i = 0; (t = retrieve_table(i)) != NULL; i++, given += t->n) {
		if (given + t->n > sizeof(sc->retrieve_given))
			panic("retrieve: more keys than session_config.retrieve_given holds");
		rc = settings_parse(t, sc, sc->retrieve_given + given, key, value, problem);
		if (rc <= 0)
			return rc;
	}
	return 1;
}

int retrieve_check(const struct config *cfg, const struct session_config *sc, const char *path,
		   struct buf *err)
{
	const struct retrieval *m = sc && sc->retrieve ? retrieve_method(sc->retrieve) : NULL;
	const char *why = m && m->check ? m->check(cfg, sc) : NULL;

	if (why == NULL)
		return 0;
	buf_printf(err, "%s:%d: [session]: %s\n", path, sc->line, why);
	return 1;
}

void retrieve_show(const struct session_config *sc, FILE *out)
{
	const struct settings_table *t;

	for (size_t i = 0; (t = retrieve_table(i)) != NULL; i++)
		settings_show(t, sc, out);
}

void retrieve_config_free(struct session_config *sc)
{
	const struct settings_table *t;

	for (size_t i = 0; (t = retrieve_table(i)) != NULL; i++)
		settings_release(t, sc);
}

void retrieve_config_names(struct buf *out)
{
	const struct settings_table *t;

	for (size_t i = 0; (t = retrieve_table(i)) != NULL; i++)
		settings_names(t, out);
}

/* --- jobs --------------------------------------------------------------------- */

struct retrieve_job *retrieve_job_new(const struct retrieval *m, const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = xcalloc(1, sizeof(*j));

	j->ctx = *ctx;
	j->method = m;
	j->entry = xstrdup(ctx->entry ? ctx->entry : "");
	j->host = ctx->host ? xstrdup(ctx->host) : NULL;
	j->ctx.entry = j->entry;
	j->ctx.host = j->host;
	j->msgs0 = ctx->msgs_in ? *ctx->msgs_in : 0; /* the provider may be quick */
	return j;
}

void retrieve_cancel(struct retrieve_job *j)
{
	if (j == NULL)
		return;
	if (j->method->cancel)
		j->method->cancel(j);
	retrieve_client_free(j->client);
	if (j->tick)
		event_free(j->tick);
	buf_free(&j->summary);
	free(j->entry);
	free(j->host);
	free(j);
}

void retrieve_finish(struct retrieve_job *j, int ok, const char *text)
{
	void (*done)(int, const char *, void *) = j->ctx.done;
	void *arg = j->ctx.arg;
	char *t = xstrdup(text);

	event_log(EV_RETRIEVE_DONE, "Inbound retrieval (%s) via %s over: %s", j->ctx.sc->retrieve,
		  j->entry, t);
	retrieve_cancel(j);
	done(ok, t, arg);
	free(t);
}

/* The job may carry on after a failure (ETRN replies that started something
 * still get their wait); the summary says what failed at the end. */
void retrieve_failed(struct retrieve_job *j, const char *fmt, ...)
{
	const char *kv[] = {"method", j->ctx.sc->retrieve, NULL};
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	event_logkv(EV_RETRIEVE_FAILED, kv, "Inbound retrieval (%s) via %s failed: %s",
		    j->ctx.sc->retrieve, j->entry, buf_cstr(&b));
	buf_printf(&j->summary, "%s%s", j->summary.len ? "; " : "", buf_cstr(&b));
	buf_free(&b);
}

struct retrieve_job *retrieve_abort(struct retrieve_job *j, const char *why)
{
	retrieve_failed(j, "%s", why);
	retrieve_finish(j, 0, why);
	return NULL;
}

struct retrieve_job *retrieve_connect(struct retrieve_job *j, const char *problem,
				      const struct retrieve_client_opts *o,
				      const struct retrieve_client_ops *ops)
{
	struct buf why = BUF_INIT;

	if (problem)
		return retrieve_abort(j, problem);
	j->client = retrieve_client_connect(j->ctx.base, o, ops, j, &why);
	if (j->client == NULL)
		j = retrieve_abort(j, buf_cstr(&why));
	buf_free(&why);
	return j;
}

void retrieve_over(int ok, const char *text, void *arg)
{
	struct retrieve_job *j = arg;

	j->client = NULL; /* it freed itself */
	if (!ok)
		retrieve_failed(j, "%s", text);
	retrieve_finish(j, ok, text);
}

void retrieve_tick(struct retrieve_job *j, void (*cb)(evutil_socket_t, short, void *))
{
	struct timeval tv = {0, RJ_TICK_MS * 1000};

	j->tick = event_new(j->ctx.base, -1, EV_PERSIST, cb, j);
	event_add(j->tick, &tv);
}

unsigned retrieve_received(const struct retrieve_job *j)
{
	return j->ctx.msgs_in ? *j->ctx.msgs_in - j->msgs0 : 0;
}
