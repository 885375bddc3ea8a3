/* retrieve = turn (RFC 821 TURN; insecure, so only with turn_enabled): EHLO,
 * TURN, then our SMTP server serves the provider on the same connection.
 * Invariant: every TURN use and its end is a warning event 4125. */
#include <stdarg.h>
#include <stdlib.h>

#include "mail/event.h"
#include "dialup/retrieve.h"
#include "dialup/retrieve_client.h"
#include "lib/xmalloc.h"

extern const struct retrieval turn_method;

static const char *turn_check(const struct config *cfg, const struct session_config *sc)
{
	if (cfg->turn_enabled)
		return NULL;
	return "retrieve = turn needs turn_enabled = yes: TURN (RFC 821) is insecure, anyone who "
	       "can reach the provider as this client gets the mail; use retrieve = atrn (RFC "
	       "2645, with AUTH) if the provider offers it";
}

/* Event 4125. */
static void turn_event(const struct retrieve_job *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void turn_event(const struct retrieve_job *j, int code, const char *fmt, ...)
{
	char c[8];
	const char *kv[] = {"host", j->host, "code", c, NULL};
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	snprintf(c, sizeof(c), "%d", code);
	event_logkv(EV_RETRIEVE_TURN, kv, "TURN retrieval at %s port %d: %s", j->host, j->ctx.port,
		    buf_cstr(&b));
	buf_free(&b);
}

static void turn_ready(struct retrieve_client *c, void *arg)
{
	retrieve_client_command(c, "TURN");
}

static void turn_reply(struct retrieve_client *c, int code, const char *text, void *arg)
{
	struct retrieve_job *j = arg;

	if (code == 250) {
		turn_event(j, code,
			   "TURN used (insecure: RFC 821 TURN does not authenticate this site; "
			   "prefer retrieve = atrn): %d %s; roles reversed",
			   code, text);
		return retrieve_client_reverse(c, j->ctx.smtp);
	}
	turn_event(j, code, "TURN refused: %d %s", code, text);
	retrieve_client_quit(c, 0, "TURN at %s refused: %d %s", j->host, code, text);
}

static void turn_refused(struct retrieve_client *c, int stage, int code, const char *text,
			 void *arg)
{
	struct retrieve_job *j = arg;

	if (stage == RC_REFUSED_GREETING)
		return retrieve_client_end(c, 0, "%s greeted with %d %s", j->host, code, text);
	retrieve_client_send_quit(c);
	retrieve_client_end(c, 0, "%s refused HELO: %d %s", j->host, code, text);
}

/* The provider's SMTP client session on our server ended. */
static void turn_closed(struct retrieve_client *c, int quit, void *arg)
{
	struct retrieve_job *j = arg;
	unsigned got = retrieve_received(j);

	turn_event(j, quit ? 221 : 0, "%s (%u messages received)",
		   quit ? "the provider sent QUIT: retrieval complete"
			: "the connection ended before the provider's QUIT",
		   got);
	if (quit)
		retrieve_client_end(c, 1, "TURN at %s: %u messages received, provider sent QUIT",
				    j->host, got);
	else
		retrieve_client_end(c, 0, "TURN at %s: connection lost after %u messages", j->host,
				    got);
}

static const struct retrieve_client_ops turn_client_ops = {
    .ready = turn_ready,
    .reply = turn_reply,
    .refused = turn_refused,
    .closed = turn_closed,
    .end = retrieve_over,
};

static struct retrieve_job *turn_run(const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = retrieve_job_new(&turn_method, ctx);
	char *malformed = xasprintf("malformed reply from %s", j->host ? j->host : "");
	struct retrieve_client_opts o = {.mode = RC_SMTP,
					 .cfg = ctx->cfg,
					 .sc = ctx->sc,
					 .host = j->host,
					 .port = ctx->port,
					 .peer = "the provider",
					 .malformed = malformed};

	j = retrieve_connect(j,
			     j->host == NULL ? "no route with a smarthost goes through the link: "
					       "nowhere to send TURN"
			     : ctx->smtp == NULL ? "no SMTP server to receive the mail"
						 : NULL,
			     &o, &turn_client_ops);
	free(malformed);
	return j;
}

const struct retrieval turn_method = {
    .end_known = 1,
    .name = "turn",
    .check = turn_check,
    .run = turn_run,
};
