/* retrieve = atrn (RFC 2645): AUTH and ATRN at the hub's ODMR port, then the
 * connection is our SMTP server's (the hub's side is hub/odmr.c). Invariant:
 * the ATRN command and its reply exist once, for TCP and the modem line. */
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialup/atrn.h"
#include "dialup/odmr_client.h"
#include "dialup/retrieve.h"
#include "lib/fingerprint.h"
#include "lib/xmalloc.h"
#include "mail/event.h"
#include "mail/policy.h"
#include "mail/routes.h"

extern const struct retrieval atrn_method;

/* --- settings ------------------------------------------------------------ */

#define AOFF(f) offsetof(struct session_config, f)

static int atrn_check_host(const char *v, struct buf *problem)
{
	if (*v && !strchr(v, ' '))
		return 0;
	buf_printf(problem, "'%s' is not host[:port]", v);
	return -1;
}

static int atrn_check_domain(const char *item, struct buf *problem)
{
	if (policy_domain_ok(item, strlen(item)))
		return 0;
	buf_printf(problem, "'%s' is not a domain", item);
	return -1;
}

/* atrn_ca must be readable when the configuration is read: a typo is a
 * configuration error, not a failed call. */
static int atrn_check_ca(const char *v, struct buf *problem)
{
	FILE *f = fopen(v, "r");

	if (f == NULL) {
		buf_printf(problem, "%s: cannot open: %s", v, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

static int atrn_parse_tls(const struct setting *s, void *base, const char *v, struct buf *problem)
{
	int policy = odmr_client_tls_policy(v);

	if (policy < 0) {
		buf_printf(problem, "'%s' is not none, opportunistic or required", v);
		return -1;
	}
	((struct session_config *)base)->atrn_tls = policy;
	return 0;
}

static void atrn_format_tls(const struct setting *s, const void *base, struct buf *out)
{
	buf_puts(out, odmr_client_tls_name(((const struct session_config *)base)->atrn_tls));
}

/* atrn_fingerprint: kept as 64 lower-case hex digits, shown as sha256:HEX. */
static int atrn_parse_pin(const struct setting *s, void *base, const char *v, struct buf *problem)
{
	struct session_config *sc = base;
	char *pin = fingerprint_parse(v);

	if (pin == NULL) {
		buf_printf(problem, "'%s' is not sha256:HEX (64 hex digits)", v);
		return -1;
	}
	free(sc->atrn_fingerprint);
	sc->atrn_fingerprint = pin;
	return 0;
}

static void atrn_format_pin(const struct setting *s, const void *base, struct buf *out)
{
	const struct session_config *sc = base;

	if (sc->atrn_fingerprint)
		buf_printf(out, "sha256:%s", sc->atrn_fingerprint);
}

static void atrn_release_pin(const struct setting *s, void *base)
{
	struct session_config *sc = base;

	free(sc->atrn_fingerprint);
	sc->atrn_fingerprint = NULL;
}

static const struct setting atrn_settings[] = {
    {.name = "atrn_host",
     .type = T_STRING,
     .off = AOFF(atrn_host),
     .check = atrn_check_host,
     .help = "the hub's ODMR port, host[:port] (366); unset: the link route's smarthost"},
    {.name = "atrn_domains",
     .type = T_LIST,
     .def = "",
     .off = AOFF(atrn_domains),
     .check = atrn_check_domain,
     .help = "the domains to claim with one ATRN"},
    {.name = "atrn_auth",
     .type = T_STRING,
     .off = AOFF(atrn_auth),
     .help = "NAME of the auth_file credentials to authenticate with"},
    {.name = "atrn_tls",
     .type = T_CUSTOM,
     .def = "opportunistic",
     .parse = atrn_parse_tls,
     .format = atrn_format_tls,
     .help = "STARTTLS of the ATRN client and a direct line: opportunistic, required, none"},
    {.name = "atrn_ca",
     .type = T_STRING,
     .off = AOFF(atrn_ca),
     .check = atrn_check_ca,
     .help = "PEM file of the CAs that must sign the hub's certificate"},
    {.name = "atrn_fingerprint",
     .type = T_CUSTOM,
     .parse = atrn_parse_pin,
     .format = atrn_format_pin,
     .release = atrn_release_pin,
     .help = "sha256:HEX of the hub's certificate; any other is refused"},
};
static const struct settings_table atrn_table = {"[session]", atrn_settings,
						 sizeof(atrn_settings) / sizeof(atrn_settings[0])};

static const char *atrn_check(const struct config *cfg, const struct session_config *sc)
{
	if (sc->atrn_domains.n == 0)
		return "retrieve = atrn needs atrn_domains (the domains to claim)";
	if (sc->atrn_auth == NULL)
		return "retrieve = atrn needs atrn_auth (a NAME of auth_file: RFC 2645 "
		       "requires AUTH)";
	return NULL;
}

/* --- the ATRN command, on TCP and on the line ------------------------------ */

void atrn_command(struct retrieve_client *c, const struct session_config *sc)
{
	char *cmd = odmr_client_atrn_cmd(&sc->atrn_domains);

	retrieve_client_command(c, "%s", cmd);
	free(cmd);
}

int atrn_answer(struct retrieve_client *c, int code, const char *text)
{
	retrieve_client_step(c, code == 250 ? "ATRN accepted, roles reversed" : "ATRN reply", code,
			     text);
	if (code == 250)
		return 1;
	retrieve_client_send_quit(c);
	return code == 453 ? 0 : -1;
}

/* --- the job: the client dialogue over TCP ---------------------------------- */

/* Event 4124, one step of the dialogue. */
static void atrn_step(void *arg, const char *what, int code, const char *text)
{
	struct retrieve_job *j = arg;
	const char *host = retrieve_client_host(j->client);
	char c[8];
	const char *kv[] = {"host", host, "code", c, NULL};

	snprintf(c, sizeof(c), "%d", code);
	event_logkv(EV_RETRIEVE_ATRN, kv, "ATRN retrieval at %s port %d: %s%s%s", host,
		    retrieve_client_port(j->client), what, text ? ": " : "", text ? text : "");
}

static void atrn_ready(struct retrieve_client *c, void *arg)
{
	struct retrieve_job *j = arg;

	atrn_command(c, j->ctx.sc);
}

static void atrn_reply(struct retrieve_client *c, int code, const char *text, void *arg)
{
	struct retrieve_job *j = arg;
	const char *host = retrieve_client_host(c);
	int r = atrn_answer(c, code, text);

	if (r > 0)
		return retrieve_client_reverse(c, j->ctx.smtp);
	if (r == 0)
		return retrieve_client_end(c, 1, "ATRN at %s: no mail waiting (%d %s)", host, code,
					   text);
	retrieve_client_end(c, 0, "ATRN at %s refused: %d %s", host, code, text);
}

/* The hub's SMTP client session on our server ended. */
static void atrn_closed(struct retrieve_client *c, int quit, void *arg)
{
	const char *host = retrieve_client_host(c);
	unsigned got = retrieve_received(arg);

	retrieve_client_step(c,
			     quit ? "the hub sent QUIT: retrieval complete"
				  : "the connection ended before the hub's QUIT",
			     quit ? 221 : 0, NULL);
	if (quit)
		retrieve_client_end(c, 1, "ATRN at %s: %u messages received, hub sent QUIT", host,
				    got);
	else
		retrieve_client_end(c, 0, "ATRN at %s: connection lost after %u messages", host,
				    got);
}

static const struct retrieve_client_ops atrn_client_ops = {
    .ready = atrn_ready,
    .reply = atrn_reply,
    .closed = atrn_closed,
    .step = atrn_step,
    .end = retrieve_over,
};

/* atrn_host, else the link route's smarthost; port 366 unless given. */
static char *atrn_target(const struct retrieve_job *j, int *port)
{
	const char *h = j->ctx.sc->atrn_host ? j->ctx.sc->atrn_host : j->host;

	*port = ODMR_PORT;
	return h ? odmr_client_host(h, port) : NULL;
}

static struct retrieve_job *atrn_run(const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = retrieve_job_new(&atrn_method, ctx);
	struct retrieve_client_opts o = {.mode = RC_ODMR,
					 .cfg = ctx->cfg,
					 .sc = ctx->sc,
					 .peer = "the hub",
					 .malformed = "malformed reply from the hub"};
	char *host = atrn_target(j, &o.port);

	o.host = host;
	o.cred = ctx->sc->atrn_auth ? routes_auth(ctx->cfg->routes, ctx->sc->atrn_auth) : NULL;
	j = retrieve_connect(j,
			     host == NULL	 ? "no atrn_host and no smarthost for the link"
			     : o.cred == NULL	 ? "atrn_auth names no credentials of auth_file"
			     : ctx->smtp == NULL ? "no SMTP server to receive the mail"
						 : NULL,
			     &o, &atrn_client_ops);
	free(host);
	return j;
}

const struct retrieval atrn_method = {
    .end_known = 1,
    .name = "atrn",
    .settings = &atrn_table,
    .check = atrn_check,
    .run = atrn_run,
};
