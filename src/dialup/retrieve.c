/* The retrieval methods as one family: the table, the shared key
 * retrieve_timeout, and what every job does (events 4121, 4123, the end).
 * Invariant: nothing outside reaches a method but through this table. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/event.h"
#include "dialup/retrieve.h"
#include "lib/xmalloc.h"

#define RJ_TICK_MS     250 /* inbound-session and child checks */
#define RJ_DEFAULT_TMO 120

/* --- the table ------------------------------------------------------------ */

static struct retrieve_job *retrieve_none_run(const struct retrieval_ctx *ctx)
{
	ctx->done(1, "no inbound retrieval configured (retrieve = none)", ctx->arg);
	return NULL;
}

static const struct retrieval none_method = {.name = "none", .run = retrieve_none_run};

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

/* retrieve_timeout: the connection and each reply of etrn, atrn and turn,
 * the command's run time (command), and the line's timeout (data = direct,
 * at least 5 min). */
enum rj_key { RK_TIMEOUT, RK_COUNT };
static const char *const rj_keys[RK_COUNT] = {"retrieve_timeout"};

int retrieve_duration(const char *v, int *out, int min, struct buf *problem)
{
	char *end;
	long n, mult = 1;

	errno = 0;
	n = strtol(v, &end, 10);
	if (*end && end[1] == '\0')
		mult = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : 0;
	else if (*end)
		mult = 0;
	if (v[0] < '0' || v[0] > '9' || errno || mult == 0 || n < min || n > 86400 / mult) {
		buf_printf(problem, "'%s' is not a duration (%d s to 1d; s, m, h)", v, min);
		return -1;
	}
	*out = (int)(n * mult);
	return 0;
}

int retrieve_key(const char *const *keys, int n, const char *key, unsigned *set,
		 struct buf *problem)
{
	int k;

	for (k = 0; k < n && strcmp(key, keys[k]) != 0; k++)
		;
	if (k == n)
		return -1;
	if (*set & (1u << k)) {
		buf_puts(problem, "set twice in [session]");
		return -2;
	}
	*set |= 1u << k;
	return k;
}

void retrieve_config_defaults(struct session_config *sc)
{
	sc->retrieve_timeout = RJ_DEFAULT_TMO;
	for (size_t i = 0; i < N_METHODS; i++)
		if (retrieve_methods[i]->config_defaults)
			retrieve_methods[i]->config_defaults(sc);
}

int retrieve_config_line(struct session_config *sc, const char *key, const char *value,
			 struct buf *problem)
{
	int k = retrieve_key(rj_keys, RK_COUNT, key, &sc->retrieve_set, problem), rc;

	if (k == RK_TIMEOUT)
		return retrieve_duration(value, &sc->retrieve_timeout, 1, problem);
	if (k == -2)
		return -1;
	for (size_t i = 0; i < N_METHODS; i++)
		if (retrieve_methods[i]->config_line &&
		    (rc = retrieve_methods[i]->config_line(sc, key, value, problem)) <= 0)
			return rc;
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
	fprintf(out, "retrieve_timeout = %ds\n", sc->retrieve_timeout);
	for (size_t i = 0; i < N_METHODS; i++)
		if (retrieve_methods[i]->show)
			retrieve_methods[i]->show(sc, out);
}

void retrieve_config_free(struct session_config *sc)
{
	for (size_t i = 0; i < N_METHODS; i++)
		if (retrieve_methods[i]->config_free)
			retrieve_methods[i]->config_free(sc);
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
