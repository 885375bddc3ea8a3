/* retrieve = etrn (RFC 1985): one ETRN per etrn_domains at the smarthost,
 * then wait for the provider's inbound session (etrn_grace). Invariant: each
 * ETRN reply is one event 4120, and the job ends only after that wait. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>

#include "mail/event.h"
#include "dialup/retrieve.h"
#include "dialup/retrieve_client.h"
#include "lib/clock.h"
#include "lib/xmalloc.h"
#include "smtp/smtp_server.h"

extern const struct retrieval etrn_method;

/* --- settings ------------------------------------------------------------ */

static int etrn_check_domain(const char *item, struct buf *problem)
{
	if (strspn(item, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.@") ==
	    strlen(item))
		return 0;
	buf_printf(problem, "'%s' is not a domain (or @domain)", item);
	return -1;
}

static const struct setting etrn_settings[] = {
    {.name = "etrn_domains",
     .type = T_LIST,
     .def = "",
     .off = offsetof(struct session_config, etrn_domains),
     .check = etrn_check_domain,
     .help = "the domains (or @domain: with subdomains) to ask for, one ETRN each"},
    {.name = "etrn_grace",
     .type = T_DURATION,
     .def = "60s",
     .min = 0,
     .max = 86400,
     .off = offsetof(struct session_config, etrn_grace),
     .help = "how long to wait for the provider's inbound session after ETRN"},
};
static const struct settings_table etrn_table = {"[session]", etrn_settings, 2};

static const char *etrn_check(const struct config *cfg, const struct session_config *sc)
{
	if (sc->etrn_domains.n == 0)
		return "retrieve = etrn needs etrn_domains (the domains to ask for)";
	return NULL;
}

/* --- the job --------------------------------------------------------------- */

struct etrn {
	size_t next;   /* next etrn_domains index */
	int started;   /* a 250/252/253 came */
	int seen;      /* an inbound SMTP session was seen after ETRN */
	int64_t until; /* the end of etrn_grace */
};

/* What an ETRN reply code means (RFC 1985 section 5), in words. */
static const char *etrn_meaning(int code)
{
	switch (code) {
	case 250:
		return "queuing for the node started";
	case 251:
		return "no messages waiting for the node";
	case 252:
		return "pending messages for the node started";
	case 253:
		return "pending messages for the node started (with a count)";
	case 458:
		return "the provider is unable to queue messages for the node";
	case 459:
		return "the node is not allowed";
	case 500:
	case 502:
		return "ETRN is not understood or not offered";
	case 501:
		return "syntax error in the ETRN parameter";
	case 503:
		return "ETRN out of sequence";
	}
	return code >= 500 ? "refused" : code >= 400 ? "temporary failure" : "unexpected reply";
}

static void etrn_cancel(struct retrieve_job *j)
{
	free(j->state);
}

/* Waits while the provider's inbound session is open, or for it to start. */
static void etrn_on_wait(evutil_socket_t fd, short what, void *arg)
{
	struct retrieve_job *j = arg;
	struct etrn *e = j->state;
	int open = smtp_server_inbound_sessions(j->ctx.smtp);
	char *text;

	/* A short session can open and close between two looks: a message
	 * received since ETRN counts as one seen. */
	e->seen |= j->ctx.msgs_in && *j->ctx.msgs_in != j->msgs0;
	if (open > 0) {
		e->seen = 1;
		return;
	}
	if (e->seen) {
		retrieve_finish(j, 1, "the provider's inbound SMTP session ended");
		return;
	}
	if (clock_usec() < e->until)
		return;
	text = xasprintf("no inbound SMTP session from the provider within etrn_grace (%d s)",
			 j->ctx.sc->etrn_grace);
	retrieve_finish(j, 1, text);
	free(text);
}

/* The dialogue is over (after QUIT, or failed): wait for the mail, or finish. */
static void etrn_end(int ok, const char *text, void *arg)
{
	struct retrieve_job *j = arg;
	struct etrn *e = j->state;

	j->client = NULL; /* it freed itself */
	if (!ok)
		retrieve_failed(j, "%s", text);
	if (!e->started) {
		retrieve_finish(j, 0,
				j->summary.len ? buf_cstr(&j->summary) : "nothing was released");
		return;
	}
	e->until = clock_usec() + (int64_t)j->ctx.sc->etrn_grace * 1000000;
	retrieve_tick(j, etrn_on_wait);
}

static void etrn_next(struct retrieve_client *c, void *arg)
{
	struct retrieve_job *j = arg;
	struct etrn *e = j->state;

	if (e->next < j->ctx.sc->etrn_domains.n)
		retrieve_client_command(c, "ETRN %s", j->ctx.sc->etrn_domains.v[e->next++]);
	else
		retrieve_client_quit(c, 1, "%s", "");
}

/* Event 4120 for the reply to one ETRN, then the next one. */
static void etrn_reply(struct retrieve_client *c, int code, const char *text, void *arg)
{
	struct retrieve_job *j = arg;
	struct etrn *e = j->state;
	const char *domain = j->ctx.sc->etrn_domains.v[e->next - 1];
	char cs[8];
	const char *kv[] = {"domain", domain, "code", cs, NULL};

	snprintf(cs, sizeof(cs), "%d", code);
	event_logkv(EV_RETRIEVE_ETRN_REPLY, kv, "ETRN %s at %s port %d: %d %s (%s)", domain,
		    j->host, j->ctx.port, code, text, etrn_meaning(code));
	buf_printf(&j->summary, "%sETRN %s: %d %s", j->summary.len ? "; " : "", domain, code,
		   etrn_meaning(code));
	e->started |= code == 250 || code == 252 || code == 253;
	etrn_next(c, arg);
}

static void etrn_refused(struct retrieve_client *c, int stage, int code, const char *text,
			 void *arg)
{
	struct retrieve_job *j = arg;

	if (stage == RC_REFUSED_GREETING)
		return retrieve_client_end(c, 0, "%s port %d greeted with %d %s", j->host,
					   j->ctx.port, code, text);
	retrieve_failed(j, "%s port %d refused HELO: %d %s", j->host, j->ctx.port, code, text);
	retrieve_client_quit(c, 1, "%s", "");
}

static void etrn_lost(struct retrieve_client *c, short what, void *arg)
{
	struct retrieve_job *j = arg;

	retrieve_client_end(c, 0, "%s port %d: %s", j->host, j->ctx.port,
			    (what & BEV_EVENT_TIMEOUT)	  ? "no reply within retrieve_timeout"
			    : (what & BEV_EVENT_EOF)	  ? "the connection was closed"
			    : !retrieve_client_greeted(c) ? "no connection"
							  : "the connection failed");
}

static const struct retrieve_client_ops etrn_client_ops = {
    .ready = etrn_next,
    .reply = etrn_reply,
    .refused = etrn_refused,
    .lost = etrn_lost,
    .end = etrn_end,
};

static struct retrieve_job *etrn_run(const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = retrieve_job_new(&etrn_method, ctx);
	struct retrieve_client_opts o = {
	    .mode = RC_SMTP, .cfg = ctx->cfg, .sc = ctx->sc, .host = j->host, .port = ctx->port};

	j->state = xcalloc(1, sizeof(struct etrn));
	if (j->host == NULL) {
		retrieve_failed(j,
				"no route with a smarthost goes through link %s: nowhere to "
				"send ETRN",
				j->entry);
		retrieve_finish(j, 0, "no smarthost to send ETRN to");
		return NULL;
	}
	return retrieve_connect(j, NULL, &o, &etrn_client_ops);
}

const struct retrieval etrn_method = {
    .name = "etrn",
    .settings = &etrn_table,
    .check = etrn_check,
    .run = etrn_run,
    .cancel = etrn_cancel,
};
