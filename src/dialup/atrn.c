/* retrieve = atrn (RFC 2645): AUTH and ATRN at the hub's ODMR port, then the
 * connection is our SMTP server's (the hub's side is hub/odmr.c). Invariant:
 * the ATRN command and its reply exist once, for TCP and the modem line. */
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

enum atrn_key { AK_HOST, AK_DOMAINS, AK_AUTH, AK_TLS, AK_CA, AK_PIN, AK_COUNT };
static const char *const atrn_keys[AK_COUNT] = {"atrn_host", "atrn_domains", "atrn_auth",
						"atrn_tls",  "atrn_ca",	     "atrn_fingerprint"};

/* atrn_tls, atrn_ca, atrn_fingerprint: 0, or -1 with problem filled. */
static int atrn_config_tls(struct session_config *sc, int k, const char *value, struct buf *problem)
{
	FILE *f;

	if (k == AK_TLS) {
		if ((sc->atrn_tls = odmr_client_tls_policy(value)) >= 0)
			return 0;
		buf_printf(problem, "'%s' is not none, opportunistic or required", value);
		return -1;
	}
	if (k == AK_PIN) {
		if ((sc->atrn_fingerprint = fingerprint_parse(value)) != NULL)
			return 0;
		buf_printf(problem, "'%s' is not sha256:HEX (64 hex digits)", value);
		return -1;
	}
	if ((f = fopen(value, "r")) == NULL) { /* a typo is a config error */
		buf_printf(problem, "%s: cannot open: %s", value, strerror(errno));
		return -1;
	}
	fclose(f);
	sc->atrn_ca = xstrdup(value);
	return 0;
}

static int atrn_config_line(struct session_config *sc, const char *key, const char *value,
			    struct buf *problem)
{
	int k = retrieve_key(atrn_keys, AK_COUNT, key, &sc->atrn_set, problem);

	if (k < 0)
		return k == -1 ? 1 : -1;
	if (k >= AK_TLS)
		return atrn_config_tls(sc, k, value, problem);
	if (k == AK_DOMAINS) {
		strlist_split(&sc->atrn_domains, value);
		for (size_t i = 0; i < sc->atrn_domains.n; i++)
			if (!policy_domain_ok(sc->atrn_domains.v[i],
					      strlen(sc->atrn_domains.v[i]))) {
				buf_printf(problem, "'%s' is not a domain", sc->atrn_domains.v[i]);
				return -1;
			}
		return 0;
	}
	if (k == AK_HOST && (strchr(value, ' ') || *value == '\0')) {
		buf_printf(problem, "'%s' is not host[:port]", value);
		return -1;
	}
	free(k == AK_HOST ? sc->atrn_host : sc->atrn_auth);
	*(k == AK_HOST ? &sc->atrn_host : &sc->atrn_auth) = xstrdup(value);
	return 0;
}

static const char *atrn_check(const struct config *cfg, const struct session_config *sc)
{
	if (sc->atrn_domains.n == 0)
		return "retrieve = atrn needs atrn_domains (the domains to claim)";
	if (sc->atrn_auth == NULL)
		return "retrieve = atrn needs atrn_auth (a NAME of auth_file: RFC 2645 "
		       "requires AUTH)";
	return NULL;
}

static void atrn_show(const struct session_config *sc, FILE *out)
{
	fprintf(out, "atrn_host =%s%s\natrn_domains =", sc->atrn_host ? " " : "",
		sc->atrn_host ? sc->atrn_host : "");
	for (size_t i = 0; i < sc->atrn_domains.n; i++)
		fprintf(out, "%s%s", i ? ", " : " ", sc->atrn_domains.v[i]);
	fprintf(out, "\natrn_auth =%s%s\n", sc->atrn_auth ? " " : "",
		sc->atrn_auth ? sc->atrn_auth : "");
	fprintf(out, "atrn_tls = %s\natrn_ca =%s%s\natrn_fingerprint =%s%s\n",
		odmr_client_tls_name(sc->atrn_tls), sc->atrn_ca ? " " : "",
		sc->atrn_ca ? sc->atrn_ca : "", sc->atrn_fingerprint ? " sha256:" : "",
		sc->atrn_fingerprint ? sc->atrn_fingerprint : "");
}

static void atrn_config_free(struct session_config *sc)
{
	free(sc->atrn_host);
	free(sc->atrn_auth);
	free(sc->atrn_ca);
	free(sc->atrn_fingerprint);
	strlist_free(&sc->atrn_domains);
	sc->atrn_host = sc->atrn_auth = sc->atrn_ca = sc->atrn_fingerprint = NULL;
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
    .name = "atrn",
    .config_line = atrn_config_line,
    .check = atrn_check,
    .show = atrn_show,
    .config_free = atrn_config_free,
    .run = atrn_run,
};
