/* Inbound retrieval methods for the session's retrieval step: `etrn` (a
 * small SMTP client: EHLO, one ETRN per domain, QUIT; then wait while the
 * provider's inbound SMTP session is open, or etrn_grace for it to start),
 * `command` (sh -c with a timeout), `none`. Invariant: everything runs on
 * the loop without blocking it (host names through c-ares), and a job
 * calls done once and frees itself, or is cancelled and calls nothing. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "mail/config.h"
#include "mail/event.h"
#include "deliver/mx.h"
#include "dialup/atrn.h"
#include "dialup/retrieve.h"
#include "dialup/turn.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"
#include "smtp/smtp_server.h"

#define RJ_TICK_MS     250 /* inbound-session and child checks */
#define RJ_REPLY_MAX   4096
#define RJ_DEFAULT_GRC 60
#define RJ_DEFAULT_TMO 120

extern char **environ;

/* --- settings ------------------------------------------------------------ */

enum rj_key { RK_DOMAINS, RK_GRACE, RK_COMMAND, RK_TIMEOUT, RK_COUNT };
static const char *const rj_keys[RK_COUNT] = {"etrn_domains", "etrn_grace", "retrieve_command",
					      "retrieve_timeout"};

/* "30s", "2m", "1h"; a bare number is seconds. */
static int rj_duration(const char *v, int *out, int min, struct buf *problem)
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

void retrieve_config_defaults(struct session_config *sc)
{
	sc->etrn_grace = RJ_DEFAULT_GRC;
	sc->retrieve_timeout = RJ_DEFAULT_TMO;
}

int retrieve_config_line(struct session_config *sc, const char *key, const char *value,
			 struct buf *problem)
{
	int k;

	for (k = 0; k < RK_COUNT && strcmp(key, rj_keys[k]) != 0; k++)
		;
	if (k == RK_COUNT)
		return atrn_config_line(sc, key, value, problem); /* atrn_* */
	if (sc->retrieve_set & (1u << k)) {
		buf_puts(problem, "set twice in [session]");
		return -1;
	}
	sc->retrieve_set |= 1u << k;
	switch (k) {
	case RK_DOMAINS:
		strlist_split(&sc->etrn_domains, value);
		for (size_t i = 0; i < sc->etrn_domains.n; i++)
			if (strspn(sc->etrn_domains.v[i],
				   "abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.@") !=
			    strlen(sc->etrn_domains.v[i])) {
				buf_printf(problem, "'%s' is not a domain (or @domain)",
					   sc->etrn_domains.v[i]);
				return -1;
			}
		return 0;
	case RK_GRACE:
		return rj_duration(value, &sc->etrn_grace, 0, problem);
	case RK_COMMAND:
		free(sc->retrieve_command);
		sc->retrieve_command = xstrdup(value);
		return 0;
	default:
		return rj_duration(value, &sc->retrieve_timeout, 1, problem);
	}
}

int retrieve_check(const struct session_config *sc, const char *path, struct buf *err)
{
	const char *why = NULL;

	if (sc == NULL)
		return 0;
	if (strcasecmp(sc->retrieve, "etrn") == 0 && sc->etrn_domains.n == 0)
		why = "retrieve = etrn needs etrn_domains (the domains to ask for)";
	else if (strcasecmp(sc->retrieve, "command") == 0 &&
		 (sc->retrieve_command == NULL || sc->retrieve_command[0] == '\0'))
		why = "retrieve = command needs retrieve_command";
	else if (strcasecmp(sc->retrieve, "atrn") == 0)
		why = atrn_config_problem(sc);
	/* retrieve = turn needs turn_enabled: dialup/turn.c (turn_config_check) */
	if (why == NULL)
		return 0;
	buf_printf(err, "%s:%d: [session]: %s\n", path, sc->line, why);
	return 1;
}

void retrieve_show(const struct session_config *sc, FILE *out)
{
	fputs("etrn_domains =", out);
	for (size_t i = 0; i < sc->etrn_domains.n; i++)
		fprintf(out, "%s%s", i ? ", " : " ", sc->etrn_domains.v[i]);
	fprintf(out, "\netrn_grace = %ds\nretrieve_command =%s%s\nretrieve_timeout = %ds\n",
		sc->etrn_grace, sc->retrieve_command ? " " : "",
		sc->retrieve_command ? sc->retrieve_command : "", sc->retrieve_timeout);
	atrn_config_show(sc, out);
}

void retrieve_config_free(struct session_config *sc)
{
	strlist_free(&sc->etrn_domains);
	atrn_config_free(sc);
	free(sc->retrieve_command);
	sc->retrieve_command = NULL;
}

const char *retrieve_etrn_meaning(int code)
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

/* --- connecting (etrn here, atrn in odmr.c, turn in turn.c) ------------------- */

struct retrieve_conn {
	struct event_base *base;
	struct mx *mx;
	struct mx_query *q;
	char *host;
	int port, timeout_s;
	struct strlist addrs; /* "ip:port" in the order to try */
	size_t next;
	struct bufferevent *bev; /* the attempt in progress */
	struct buf tried;	 /* "addr: cause" of the failed attempts */
	retrieve_conn_cb cb;
	void *arg;
};

void retrieve_connect_cancel(struct retrieve_conn *c)
{
	if (c == NULL)
		return;
	if (c->bev)
		bufferevent_free(c->bev);
	mx_free(c->mx); /* its callbacks are not called */
	strlist_free(&c->addrs);
	buf_free(&c->tried);
	free(c->host);
	free(c);
}

/* The end: c is freed before cb runs, so cb may do anything. */
static void rc_finish(struct retrieve_conn *c, struct bufferevent *bev, const char *why)
{
	retrieve_conn_cb cb = c->cb;
	void *arg = c->arg;
	char *text = why ? xstrdup(why) : NULL;

	c->bev = NULL;
	retrieve_connect_cancel(c);
	cb(bev, text, arg);
	free(text);
}

static void rc_try(struct retrieve_conn *c);

void retrieve_conn_own(struct bufferevent *bev, void (*read_cb)(struct bufferevent *, void *),
		       void (*event_cb)(struct bufferevent *, short, void *), void *arg,
		       int timeout_s)
{
	struct timeval tv = {timeout_s, 0};

	bufferevent_setcb(bev, read_cb, NULL, event_cb, arg);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void rc_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct retrieve_conn *c = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		bufferevent_set_timeouts(bev, NULL, NULL);
		rc_finish(c, bev, NULL);
		return;
	}
	buf_printf(&c->tried, "%s%s: %s", c->tried.len ? "; " : "", c->addrs.v[c->next - 1],
		   what & BEV_EVENT_TIMEOUT ? "timed out" : evutil_socket_error_to_string(err));
	bufferevent_free(bev);
	c->bev = NULL;
	rc_try(c);
}

/* Connects to the next address; after the last one, fails with them all. */
static void rc_try(struct retrieve_conn *c)
{
	struct timeval tv = {c->timeout_s, 0};
	struct sockaddr_storage ss;
	int len;
	char *why;

	while (c->next < c->addrs.n) {
		const char *a = c->addrs.v[c->next++];
		len = (int)sizeof(ss);
		if (evutil_parse_sockaddr_port(a, (struct sockaddr *)&ss, &len) < 0)
			continue;
		c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
		bufferevent_setcb(c->bev, NULL, NULL, rc_on_event, c);
		bufferevent_set_timeouts(c->bev, &tv, &tv);
		bufferevent_enable(c->bev, EV_WRITE);
		if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, len) == 0)
			return;
		buf_printf(&c->tried, "%s%s: %s", c->tried.len ? "; " : "", a, strerror(errno));
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	why = xasprintf("no connection to %s port %d (%s)", c->host, c->port,
			c->tried.len ? buf_cstr(&c->tried) : "no address");
	rc_finish(c, NULL, why);
	free(why);
}

static void rc_on_dns(const struct mx_result *r, void *arg)
{
	struct retrieve_conn *c = arg;
	char *why;

	c->q = NULL;
	if (r->status != Q_OK || r->n == 0) {
		why = xasprintf("cannot resolve %s: %s", c->host, r->error);
		rc_finish(c, NULL, why);
		free(why);
		return;
	}
	for (size_t i = 0; i < r->n; i++)
		strlist_add(&c->addrs, r->v[i].addr);
	rc_try(c);
}

struct retrieve_conn *retrieve_connect(struct event_base *base, const struct config *cfg,
				       const char *host, int port, int timeout_s,
				       retrieve_conn_cb cb, void *arg, struct buf *why)
{
	struct retrieve_conn *c = xcalloc(1, sizeof(*c));

	if ((c->mx = mx_new(base, &cfg->dns_servers, why)) == NULL) {
		free(c);
		return NULL;
	}
	c->base = base;
	c->host = xstrdup(host);
	c->port = port;
	c->timeout_s = timeout_s > 0 ? timeout_s : 60;
	c->cb = cb;
	c->arg = arg;
	c->q = mx_host(c->mx, host, port, rc_on_dns, c);
	return c;
}

/* --- jobs ------------------------------------------------------------------- */

enum rj_state { RJ_GREET, RJ_EHLO, RJ_HELO, RJ_ETRN, RJ_QUIT, RJ_WAIT, RJ_CHILD };

struct retrieve_job {
	struct retrieval_ctx ctx;
	char *entry, *host;
	enum rj_state state;
	struct bufferevent *bev;
	struct event *tick;
	struct buf reply; /* the reply being read, lines joined by "; " */
	struct buf summary;
	size_t next;		    /* next etrn_domains index */
	int started;		    /* a 250/252/253 came */
	int seen;		    /* an inbound SMTP session was seen after ETRN */
	unsigned msgs0;		    /* messages received before the retrieval */
	int64_t until;		    /* grace end, or the command's deadline */
	pid_t pid;		    /* retrieve_command's child, or 0 */
	struct atrn_branch *atrn;   /* retrieve = atrn (dialup/atrn.c), or NULL */
	struct turn_branch *turn;   /* retrieve = turn (dialup/turn.c), or NULL */
	struct retrieve_conn *conn; /* resolving and connecting, or NULL */
};

static struct retrieve_job *rj_new(const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = xcalloc(1, sizeof(*j));

	j->ctx = *ctx;
	j->entry = xstrdup(ctx->entry ? ctx->entry : "");
	j->host = ctx->host ? xstrdup(ctx->host) : NULL;
	j->ctx.entry = j->entry;
	j->ctx.host = j->host;
	j->msgs0 = ctx->msgs_in ? *ctx->msgs_in : 0; /* the provider may be quick */
	return j;
}

static void rj_free(struct retrieve_job *j)
{
	if (j->bev)
		bufferevent_free(j->bev);
	retrieve_connect_cancel(j->conn);
	atrn_free(j->atrn);
	turn_branch_free(j->turn);
	if (j->tick)
		event_free(j->tick);
	if (j->pid > 0) {
		kill(-j->pid, SIGKILL);
		while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	buf_free(&j->reply);
	buf_free(&j->summary);
	free(j->entry);
	free(j->host);
	free(j);
}

void retrieve_cancel(struct retrieve_job *j)
{
	if (j)
		rj_free(j);
}

/* The end: event 4123, done, and the job is gone. */
static void rj_finish(struct retrieve_job *j, int ok, const char *text)
{
	void (*done)(int, const char *, void *) = j->ctx.done;
	void *arg = j->ctx.arg;
	char *t = xstrdup(text);

	event_log(EV_RETRIEVE_DONE, "Inbound retrieval (%s) via %s over: %s", j->ctx.sc->retrieve,
		  j->entry, t);
	rj_free(j);
	done(ok, t, arg);
	free(t);
}

static void rj_failed(struct retrieve_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Event 4121 with the cause; the job then finishes (or waits, after ETRN
 * replies that started something). */
static void rj_failed(struct retrieve_job *j, const char *fmt, ...)
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

static void rj_tick_start(struct retrieve_job *j, void (*cb)(evutil_socket_t, short, void *))
{
	struct timeval tv = {0, RJ_TICK_MS * 1000};

	j->tick = event_new(j->ctx.base, -1, EV_PERSIST, cb, j);
	event_add(j->tick, &tv);
}

/* --- etrn --------------------------------------------------------------- */

/* Waits while the provider's inbound session is open, or for it to start. */
static void rj_on_wait(evutil_socket_t fd, short what, void *arg)
{
	struct retrieve_job *j = arg;
	int open = smtp_server_inbound_sessions(j->ctx.smtp);
	char *text;

	/* A short session can open and close between two looks: a message
	 * received since ETRN counts as one seen. */
	j->seen |= j->ctx.msgs_in && *j->ctx.msgs_in != j->msgs0;
	if (open > 0) {
		j->seen = 1;
		return;
	}
	if (j->seen) {
		rj_finish(j, 1, "the provider's inbound SMTP session ended");
		return;
	}
	if (clock_usec() < j->until)
		return;
	text = xasprintf("no inbound SMTP session from the provider within etrn_grace (%d s)",
			 j->ctx.sc->etrn_grace);
	rj_finish(j, 1, text);
	free(text);
}

/* After QUIT (or a lost connection): wait for the mail, or finish. */
static void rj_after_quit(struct retrieve_job *j)
{
	if (j->bev) {
		bufferevent_free(j->bev);
		j->bev = NULL;
	}
	if (!j->started) {
		rj_finish(j, 0, j->summary.len ? buf_cstr(&j->summary) : "nothing was released");
		return;
	}
	j->state = RJ_WAIT;
	j->until = clock_usec() + (int64_t)j->ctx.sc->etrn_grace * 1000000;
	rj_tick_start(j, rj_on_wait);
}

static void rj_send(struct retrieve_job *j, enum rj_state next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rj_send(struct retrieve_job *j, enum rj_state next, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(j->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(j->bev), "\r\n", 2);
	j->state = next;
}

static void rj_next_etrn(struct retrieve_job *j)
{
	if (j->next < j->ctx.sc->etrn_domains.n)
		rj_send(j, RJ_ETRN, "ETRN %s", j->ctx.sc->etrn_domains.v[j->next++]);
	else
		rj_send(j, RJ_QUIT, "QUIT");
}

/* Event 4120 for the reply to one ETRN. */
static void rj_etrn_reply(struct retrieve_job *j, int code, const char *text)
{
	const char *domain = j->ctx.sc->etrn_domains.v[j->next - 1];
	char cs[8];
	const char *kv[] = {"domain", domain, "code", cs, NULL};

	snprintf(cs, sizeof(cs), "%d", code);
	event_logkv(EV_RETRIEVE_ETRN_REPLY, kv, "ETRN %s at %s port %d: %d %s (%s)", domain,
		    j->host, j->ctx.port, code, text, retrieve_etrn_meaning(code));
	buf_printf(&j->summary, "%sETRN %s: %d %s", j->summary.len ? "; " : "", domain, code,
		   retrieve_etrn_meaning(code));
	j->started |= code == 250 || code == 252 || code == 253;
}

/* Acts on one reply; 1 when the exchange is over (j may be gone). */
static int rj_reply(struct retrieve_job *j, int code, const char *text)
{
	switch (j->state) {
	case RJ_GREET:
		if (code != 220) {
			rj_failed(j, "%s port %d greeted with %d %s", j->host, j->ctx.port, code,
				  text);
			rj_after_quit(j);
			return 1;
		}
		rj_send(j, RJ_EHLO, "EHLO %s", j->ctx.cfg->hostname);
		return 0;
	case RJ_EHLO:
	case RJ_HELO:
		if (code / 100 == 2)
			rj_next_etrn(j);
		else if (j->state == RJ_EHLO)
			rj_send(j, RJ_HELO, "HELO %s", j->ctx.cfg->hostname);
		else {
			rj_failed(j, "%s port %d refused HELO: %d %s", j->host, j->ctx.port, code,
				  text);
			rj_send(j, RJ_QUIT, "QUIT");
		}
		return 0;
	case RJ_ETRN:
		rj_etrn_reply(j, code, text);
		rj_next_etrn(j);
		return 0;
	default:
		rj_after_quit(j);
		return 1;
	}
}

/* Reads reply lines; a reply ends at "NNN " (RFC 5321 4.2.1). */
static void rj_on_read(struct bufferevent *bev, void *arg)
{
	struct retrieve_job *j = arg;
	char *line;
	size_t n;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), &n, EVBUFFER_EOL_CRLF)) !=
	       NULL) {
		int last = n < 4 || line[3] != '-';
		int code = n >= 3 ? atoi(line) : 0;
		char *text;
		int over;
		if (j->reply.len < RJ_REPLY_MAX)
			buf_printf(&j->reply, "%s%s", j->reply.len ? "; " : "",
				   n > 4 ? line + 4 : "");
		free(line);
		if (!last)
			continue;
		text = buf_steal(&j->reply);
		over = rj_reply(j, code, text ? text : "");
		free(text);
		if (over)
			return; /* the connection is closed; j may be gone too */
	}
}

static void rj_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct retrieve_job *j = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (j->state != RJ_QUIT)
		rj_failed(j, "%s port %d: %s", j->host, j->ctx.port,
			  (what & BEV_EVENT_TIMEOUT) ? "no reply within retrieve_timeout"
			  : (what & BEV_EVENT_EOF)   ? "the connection was closed"
			  : j->state == RJ_GREET     ? "no connection"
						     : "the connection failed");
	rj_after_quit(j);
}

static void rj_on_connect(struct bufferevent *bev, const char *why, void *arg)
{
	struct retrieve_job *j = arg;

	j->conn = NULL;
	if (bev == NULL) {
		rj_failed(j, "%s", why);
		rj_after_quit(j);
		return;
	}
	j->bev = bev;
	retrieve_conn_own(bev, rj_on_read, rj_on_event, j, j->ctx.sc->retrieve_timeout);
}

/* Resolves and connects to the smarthost; -1 with the cause logged. */
static int rj_connect(struct retrieve_job *j)
{
	struct buf why = BUF_INIT;

	j->state = RJ_GREET;
	j->conn = retrieve_connect(j->ctx.base, j->ctx.cfg, j->host, j->ctx.port,
				   j->ctx.sc->retrieve_timeout, rj_on_connect, j, &why);
	if (j->conn == NULL)
		rj_failed(j, "%s", buf_cstr(&why));
	buf_free(&why);
	return j->conn ? 0 : -1;
}

static struct retrieve_job *rj_etrn_run(const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = rj_new(ctx);

	if (j->host == NULL) {
		rj_failed(j, "no route with a smarthost goes through link %s: nowhere to send ETRN",
			  j->entry);
		rj_finish(j, 0, "no smarthost to send ETRN to");
		return NULL;
	}
	if (rj_connect(j) < 0) {
		rj_finish(j, 0, buf_cstr(&j->summary));
		return NULL;
	}
	return j;
}

/* --- command ---------------------------------------------------------------- */

/* Environment of the command: ours plus DIALMAIL_ENTRY and DIALMAIL_SMARTHOST,
 * built before fork (no allocation between fork and exec). */
static char **rj_env(const struct retrieve_job *j)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = xcalloc(n + 3, sizeof(*env));
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "DIALMAIL_ENTRY=", 15) != 0 &&
		    strncmp(environ[i], "DIALMAIL_SMARTHOST=", 19) != 0)
			env[k++] = xstrdup(environ[i]);
	env[k++] = xasprintf("DIALMAIL_ENTRY=%s", j->entry);
	env[k++] = xasprintf("DIALMAIL_SMARTHOST=%s", j->host ? j->host : "");
	return env;
}

static void rj_env_free(char **env)
{
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
}

static void rj_command_status(struct retrieve_job *j, int status, int timed_out)
{
	const char *cmd = j->ctx.sc->retrieve_command;
	char st[32];
	const char *kv[] = {"status", st, NULL};
	char *text;
	int ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;

	if (timed_out)
		snprintf(st, sizeof(st), "timeout");
	else if (WIFEXITED(status))
		snprintf(st, sizeof(st), "%d", WEXITSTATUS(status));
	else
		snprintf(st, sizeof(st), "signal %d", WTERMSIG(status));
	if (timed_out)
		text = xasprintf("retrieval command `%s` killed after retrieve_timeout (%d s)", cmd,
				 j->ctx.sc->retrieve_timeout);
	else if (WIFEXITED(status))
		text = xasprintf("retrieval command `%s` exited with status %d", cmd,
				 WEXITSTATUS(status));
	else
		text =
		    xasprintf("retrieval command `%s` killed by signal %d", cmd, WTERMSIG(status));
	event_logkv(EV_RETRIEVE_COMMAND, kv, "Inbound retrieval via %s: %s", j->entry, text);
	rj_finish(j, ok, text);
	free(text);
}

static void rj_on_child(evutil_socket_t fd, short what, void *arg)
{
	struct retrieve_job *j = arg;
	int status = 0;
	pid_t r = waitpid(j->pid, &status, WNOHANG);

	if (r == j->pid) {
		j->pid = 0;
		rj_command_status(j, status, 0);
		return;
	}
	if (r < 0 && errno != EINTR) {
		j->pid = 0;
		rj_failed(j, "lost the command's process: %s", strerror(errno));
		rj_finish(j, 0, buf_cstr(&j->summary));
		return;
	}
	if (clock_usec() < j->until)
		return;
	kill(-j->pid, SIGKILL);
	while (waitpid(j->pid, &status, 0) < 0 && errno == EINTR)
		;
	j->pid = 0;
	rj_command_status(j, status, 1);
}

static struct retrieve_job *rj_command_run(const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = rj_new(ctx);
	char **env = rj_env(j);
	const char *cmd = ctx->sc->retrieve_command;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		setsid();
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		execle("/bin/sh", "sh", "-c", cmd, (char *)NULL, env);
		_exit(127);
	}
	rj_env_free(env);
	if (pid < 0) {
		rj_failed(j, "cannot start `%s`: %s", cmd, strerror(errno));
		rj_finish(j, 0, buf_cstr(&j->summary));
		return NULL;
	}
	j->pid = pid;
	j->state = RJ_CHILD;
	j->until = clock_usec() + (int64_t)ctx->sc->retrieve_timeout * 1000000;
	rj_tick_start(j, rj_on_child);
	return j;
}

/* --- the table ----------------------------------------------------------------- */

static struct retrieve_job *rj_none_run(const struct retrieval_ctx *ctx)
{
	ctx->done(1, "no inbound retrieval configured (retrieve = none)", ctx->arg);
	return NULL;
}

static void rj_atrn_done(int ok, const char *text, void *arg)
{
	struct retrieve_job *j = arg;

	j->atrn = NULL; /* it freed itself */
	if (!ok)
		rj_failed(j, "%s", text);
	rj_finish(j, ok, text);
}

/* ATRN (RFC 2645): hub/odmr.c does the work. */
static struct retrieve_job *rj_atrn_run(const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = rj_new(ctx);
	struct buf why = BUF_INIT;

	j->atrn = atrn_start(&j->ctx, rj_atrn_done, j, &why);
	if (j->atrn == NULL) {
		rj_failed(j, "%s", buf_cstr(&why));
		rj_finish(j, 0, buf_cstr(&why));
		j = NULL;
	}
	buf_free(&why);
	return j;
}

static void rj_turn_done(int ok, const char *text, void *arg)
{
	struct retrieve_job *j = arg;

	j->turn = NULL; /* it freed itself */
	if (!ok)
		rj_failed(j, "%s", text);
	rj_finish(j, ok, text);
}

/* TURN (RFC 821; only with turn_enabled): dialup/turn.c does the work. */
static struct retrieve_job *rj_turn_run(const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = rj_new(ctx);
	struct buf why = BUF_INIT;

	j->turn = turn_branch_start(&j->ctx, rj_turn_done, j, &why);
	if (j->turn == NULL) {
		rj_failed(j, "%s", buf_cstr(&why));
		rj_finish(j, 0, buf_cstr(&why));
		j = NULL;
	}
	buf_free(&why);
	return j;
}

static const struct retrieval rj_methods[] = {
    {"none", rj_none_run}, {"etrn", rj_etrn_run}, {"command", rj_command_run},
    {"atrn", rj_atrn_run}, {"turn", rj_turn_run},
};

const struct retrieval *retrieve_method(const char *name)
{
	for (size_t i = 0; i < sizeof(rj_methods) / sizeof(rj_methods[0]); i++)
		if (strcasecmp(rj_methods[i].name, name) == 0)
			return &rj_methods[i];
	return NULL;
}
