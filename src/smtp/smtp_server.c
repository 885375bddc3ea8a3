/* SMTP server (RFC 5321, RFC 2920 pipelining, STARTTLS, AUTH, CHUNKING; see
 * docs/smtp-server.md) on libevent: one bufferevent per session; command
 * lines, DATA and BDAT chunks are scanned from raw bytes here, so a bare CR
 * or LF can never end a line. Finished messages are staged into a
 * batch that the committer thread (queue_committer_*) makes durable while
 * the loop stages the next; sessions park, input waiting, until their batch
 * is done. Invariant: "250 ... queued" is written only after the commit
 * reported Q_OK for the message; replies and events stay on this thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "mail/policy.h"
#include "mail/event.h"
#include "mail/recipient.h"
#include "mail/routes.h"
#include "lib/buf.h"
#include "lib/cidr.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "smtp/anvil.h"
#include "smtp/batch_duplex.h"
#include "smtp/batch_server.h"
#include "smtp/dsn.h"
#include "smtp/listener.h"
#include "mail/message.h"
#include "mail/smtp_addr.h"
#include "smtp/smtp_auth.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_server.h"
#include "smtp/tls.h"

#define SMTP_LINE_MAX	 512	      /* command line, CRLF included (RFC 5321 4.5.3.1.4) */
#define SMTP_REPLY_MAX	 512	      /* reply line, CRLF included (RFC 5321 4.5.3.1.5) */
#define SMTP_ERROR_MAX	 10	      /* protocol errors before the session is closed */
#define SMTP_OUT_HIGH	 (256 * 1024) /* stop reading while this much output waits */
#define SMTP_AUTH_MAX	 3	      /* failed AUTH attempts before the session is closed */
#define SMTP_RATE_WINDOW 10	      /* seconds over which smtp_min_data_rate is averaged */

/* Session states, as bits so a command can list where it is allowed.
 * ST_BDAT: BDAT chunks (RFC 3030) received, LAST not yet. */
enum smtp_sess_state {
	ST_CONNECT = 1,
	ST_HELO = 2,
	ST_MAIL = 4,
	ST_RCPT = 8,
	ST_DATA = 16,
	ST_BDAT = 32
};
#define ST_ANY (ST_CONNECT | ST_HELO | ST_MAIL | ST_RCPT | ST_BDAT)

/* The BDAT chunk being read. Its octets are always consumed, even when the
 * command is refused (503, 552): the refusal is the reply at its end. */
enum bdat_refuse { BR_NONE, BR_SEQUENCE, BR_TOO_BIG };

struct bdat_rx {
	int reading;	     /* inside a chunk: input octets are chunk data */
	int last;	     /* it is the LAST chunk */
	uint64_t size, left; /* octets announced, and still to read */
	enum bdat_refuse refuse;
	const char *why; /* BR_SEQUENCE: the 503 reply */
};

struct smtp_session {
	struct smtp_server *srv;
	const struct listener *lst; /* where it came in; NULL: adopted */
	const struct config *cfg;   /* the listener's: its limits and deadlines */
	struct smtp_session *prev, *next;
	struct bufferevent *bev;
	char addr[INET6_ADDRSTRLEN];
	int in_mynetworks;
	int inbound; /* the provider's side (provider_networks, else outside mynetworks; adopted) */
	int esmtp;
	char *helo;
	int state;
	int errors;
	int discarding;	 /* inside an overlong command line */
	int closing;	 /* the last reply is queued; close once written */
	int parked;	 /* message staged, waiting for the group commit */
	int eof;	 /* the client half-closed; finish, then close */
	int gone;	 /* connection failed while parked: free after commit */
	int tls;	 /* STARTTLS done: bev is the TLS bufferevent */
	int starttls;	 /* "220" to STARTTLS queued: switch to TLS once written */
	char *auth_user; /* AUTH succeeded as this user (ATRN reads it), or NULL */
	int auth_failures;
	struct smtp_auth_exchange *sasl; /* AUTH in progress: lines are SASL answers */
	int auth_wait;			 /* Dovecot has the last answer: input waits */
	int local_user;			 /* from the local submission socket (sendmail) */
	int reversed;			 /* ODMR: "250" to ATRN queued; hand the connection over */
	char *atrn_param;		 /* the ATRN argument accepted */
	int quit_seen;			 /* the client sent QUIT */
	int batch_peer;			 /* from batch_networks: XDMBATCH offered */
	int batch;			 /* XDMBATCH accepted: batch_server.c has the bev */
	struct batch_server *batch_run;	 /* ... running (NULL before and after) */
	char *batch_arg;		 /* its argument */
	struct batch_duplex *duplex_run; /* XDMBATCH DUPLEX running */
	struct smtpc *duplex_tx;	 /* ... the held mail it sends (the hub's) */
	void (*on_close)(int quit, void *arg); /* adopted sessions: told when over */
	void *close_arg;
	/* Deadlines, not idle timers: a command must be complete within
	 * smtp_timeout of its first byte (ev_deadline); in DATA/BDAT the same
	 * timer checks smtp_min_data_rate every SMTP_RATE_WINDOW seconds. */
	struct event *ev_deadline;
	struct event *ev_lifetime;   /* smtp_max_session_time */
	int cmd_partial;	     /* part of a command line is in (or being discarded) */
	int lines_done;		     /* command lines taken since the deadline was armed */
	uint64_t rate_bytes;	     /* DATA/BDAT octets in this rate window */
	int adopted;		     /* smtp_server_adopt: the far end of a dial-up line */
	int slow_link;		     /* adopted or the ODMR port: no rate or session limit */
	struct anvil_client *client; /* per-client counters, or NULL (exempt) */
	struct q_env env;
	struct data_rx data;
	struct bdat_rx bdat;
};

/* Messages staged for one group commit and their parked sessions, in
 * staging order; res gets the outcomes. */
struct srv_batch {
	struct q_batch *b;
	struct smtp_session **parked;
	struct q_result *res;
	size_t n, cap;
};

struct smtp_server {
	struct event_base *base;
	const struct config *cfg;
	struct queue *q;
	void (*on_commit)(const char *qid, int inbound, void *arg);
	void *arg;
	struct listener **lst;
	size_t nlst;
	struct evconnlistener *local; /* the local submission socket, or NULL */
	/* Out of descriptors: the listeners pause (paused) for backoff_ms, 0
	 * when accepting normally; ev_resume ends the pause, then a calm
	 * back-off ends the episode. spare_fd (/dev/null) is given up to tell
	 * one waiting client 421 per back-off; -1 while it could not be had. */
	struct event *ev_resume;
	int spare_fd, paused, backoff_ms, spare_refused;
	struct smtp_session *sessions;
	int nsessions;
	int disk_low; /* EV_DISK_LOW logged, EV_DISK_OK not yet */
	struct srv_batch bat[2];
	struct srv_batch *staging;  /* filled by sessions ending DATA */
	struct srv_batch *inflight; /* at the committer thread, or NULL */
	struct q_committer *qc;	    /* NULL: commit in the loop (no thread) */
	struct event *ev_commit;    /* 0-second timer: hands staging over */
	struct event *ev_done;	    /* the committer finished a batch */
	SSL_CTX *tls_ctx;	    /* STARTTLS offered when not NULL */
	void (*etrn)(const char *client, const char *user, const char *param, struct buf *reply,
		     void *arg); /* ETRN (hub role); NULL: not offered */
	void *etrn_arg;
	int odmr;	     /* the ODMR port (RFC 2645): AUTH required, no MAIL, ATRN */
	struct anvil *anvil; /* per-client limits */
	int (*atrn)(const char *client, const char *user, const char *param, struct buf *reply,
		    void *arg);
	void (*take)(struct bufferevent *bev, const char *client, const char *user,
		     const char *param, void *arg);
	struct smtpc *(*duplex)(const char *client, const char *user, const char *domains,
				struct buf *reply, void *arg); /* XDMBATCH DUPLEX */
	void *odmr_arg;
};

static void smtp_sess_read_cb(struct bufferevent *bev, void *arg);
static void smtp_sess_event_cb(struct bufferevent *bev, short what, void *arg);
static void smtp_sess_half_closed(struct smtp_session *s);
static void smtp_sess_tls_up(struct smtp_session *s);
static void smtp_sess_tls_error(struct smtp_session *s);

/* ---------------------------------------------------------------- replies */

/* One reply line, cut to SMTP_REPLY_MAX: the ETRN and ATRN replies come
 * from a higher layer and may quote the client's argument in full. */
static void smtp_sess_vreply(struct smtp_session *s, const char *fmt, va_list ap)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	char line[SMTP_REPLY_MAX - 1]; /* the text and its NUL; CRLF added below */
	int n;

	if (s->gone) /* the connection failed: nobody to tell */
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		n = 0;
	evbuffer_add(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	evbuffer_add(out, "\r\n", 2);
}

static void smtp_sess_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void smtp_sess_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_sess_vreply(s, fmt, ap);
	va_end(ap);
}

/* A reply to a client protocol error; too many of them end the session. */
static void smtp_sess_error(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void smtp_sess_error(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_sess_vreply(s, fmt, ap);
	va_end(ap);
	if (++s->errors >= SMTP_ERROR_MAX && !s->closing) {
		smtp_sess_reply(s, "421 4.7.0 %s Error: too many errors", s->srv->cfg->hostname);
		s->closing = 1;
	}
}

/* ------------------------------------------------------- session lifetime */

static void smtp_sess_arm(struct event *ev, int secs)
{
	struct timeval tv = {secs, 0};

	evtimer_add(ev, &tv);
}

/* Waiting for commands: the deadline timer, not the bufferevent's read
 * timeout (which every byte would restart), bounds each command; writes
 * still time out after smtp_timeout. */
static void smtp_sess_command_phase(struct smtp_session *s)
{
	struct timeval tv = {s->cfg->smtp_timeout, 0};

	bufferevent_set_timeouts(s->bev, NULL, &tv);
	s->cmd_partial = 0;
	s->lines_done = 0;
	smtp_sess_arm(s->ev_deadline, s->cfg->smtp_timeout);
}

/* Reading message data: smtp_data_timeout per block of input (the
 * bufferevent's idle timeout), and the data-rate check unless exempt. */
static void smtp_sess_data_phase(struct smtp_session *s)
{
	const struct config *cfg = s->cfg;
	struct timeval tv = {cfg->smtp_data_timeout, 0};

	bufferevent_set_timeouts(s->bev, &tv, &tv);
	s->rate_bytes = 0;
	if (cfg->smtp_min_data_rate > 0 && !s->slow_link)
		smtp_sess_arm(s->ev_deadline, SMTP_RATE_WINDOW);
	else
		evtimer_del(s->ev_deadline);
}

/* After a batch of command input: a complete line restarts the deadline,
 * and so does the first byte of the next command; further bytes of that
 * command do not (a client trickling a line is cut smtp_timeout after it
 * began). */
static void smtp_sess_command_deadline(struct smtp_session *s, struct evbuffer *in)
{
	int partial = evbuffer_get_length(in) > 0 || s->discarding;

	if (s->lines_done || partial != s->cmd_partial)
		smtp_sess_arm(s->ev_deadline, s->cfg->smtp_timeout);
	s->cmd_partial = partial;
	s->lines_done = 0;
}

/* Forgets the mail transaction (RSET, HELO, end of DATA). */
static void smtp_sess_txn_reset(struct smtp_session *s)
{
	q_env_free(&s->env);
	data_rx_reset(&s->data);
	if (s->state != ST_CONNECT)
		s->state = ST_HELO;
}

static void smtp_sess_free(struct smtp_session *s)
{
	struct smtp_server *srv = s->srv;

	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	if (s->client)
		anvil_disconnect(s->client, clock_now());
	event_free(s->ev_deadline);
	event_free(s->ev_lifetime);
	if (s->on_close)
		s->on_close(s->quit_seen, s->close_arg);
	batch_server_abandon(s->batch_run);
	batch_duplex_abandon(s->duplex_run);
	if (s->duplex_tx)
		smtpc_external_end(s->duplex_tx, 0, "the session ended during XDMBATCH DUPLEX");
	if (s->bev)
		bufferevent_free(s->bev);
	free(s->atrn_param);
	free(s->batch_arg);
	q_env_free(&s->env);
	data_rx_free(&s->data);
	free(s->helo);
	free(s->auth_user);
	smtp_auth_free(s->sasl);
	free(s);
}

static void smtp_sess_close_when_written(struct bufferevent *bev, void *arg)
{
	smtp_sess_free(arg);
}

/* Input had to wait for the client to read its replies; go on now. */
static void smtp_sess_output_drained(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	bufferevent_setcb(bev, smtp_sess_read_cb, NULL, smtp_sess_event_cb, s);
	bufferevent_enable(bev, EV_READ);
	smtp_sess_read_cb(bev, s);
}

static void smtp_sess_flush(struct smtp_session *s);

/* An event while the message is in the batch: the session must live until
 * the commit, which then replies (after EOF) or frees it (after an error). */
static void smtp_sess_event_parked(struct smtp_session *s, short what)
{
	if (what & BEV_EVENT_TIMEOUT)
		return; /* reading is enabled again after the commit */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		s->eof = 1;
		return;
	}
	s->gone = 1;
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
}

/* A deadline passed (reason: the event's "reason" field): 421 4.4.2 and
 * close. The text after "%s" (the client) says which. */
static void smtp_sess_timeout(struct smtp_session *s, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void smtp_sess_timeout(struct smtp_session *s, const char *reason, const char *fmt, ...)
{
	const char *kv[] = {"client", s->addr, "reason", reason, NULL};
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	event_logkv(EV_SESSION_TIMEOUT, kv, "%s", text);
	smtp_sess_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->cfg->hostname);
	s->closing = 1;
	smtp_sess_flush(s);
}

/* ev_deadline: a command not complete in time, or data too slow. A parked
 * session (its message at the committer) is looked at again later. */
static void smtp_sess_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	const struct config *cfg = s->cfg;

	if (s->closing || s->reversed)
		return;
	if (s->parked) {
		smtp_sess_arm(s->ev_deadline, cfg->smtp_timeout);
		return;
	}
	if (s->state != ST_DATA && !s->bdat.reading) {
		smtp_sess_timeout(s, "command",
				  "SMTP session with %s timed out: command not complete within %d "
				  "seconds",
				  s->addr, cfg->smtp_timeout);
		return;
	}
	if (s->rate_bytes < (uint64_t)cfg->smtp_min_data_rate * SMTP_RATE_WINDOW) {
		smtp_sess_timeout(
		    s, "data-rate",
		    "SMTP session with %s cut in DATA: %llu octets in %d seconds, below "
		    "smtp_min_data_rate %d",
		    s->addr, (unsigned long long)s->rate_bytes, SMTP_RATE_WINDOW,
		    cfg->smtp_min_data_rate);
		return;
	}
	s->rate_bytes = 0;
	smtp_sess_arm(s->ev_deadline, SMTP_RATE_WINDOW);
}

/* ev_lifetime: smtp_max_session_time is over (a parked session first gets
 * its commit answered). */
static void smtp_sess_lifetime_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (s->closing || s->reversed)
		return;
	if (s->parked) {
		smtp_sess_arm(s->ev_lifetime, 1);
		return;
	}
	smtp_sess_timeout(s, "session-time",
			  "SMTP session with %s cut after smtp_max_session_time %d seconds",
			  s->addr, s->cfg->smtp_max_session_time);
}

static void smtp_sess_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (s->parked) {
		smtp_sess_event_parked(s, what);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		smtp_sess_tls_up(s);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && !s->closing) {
		smtp_sess_timeout(s, "data",
				  "SMTP session with %s timed out after %d seconds in DATA",
				  s->addr, s->cfg->smtp_data_timeout);
		return;
	}
	if (s->state == ST_DATA || s->state == ST_BDAT || s->bdat.reading)
		log_info("smtp: %s: connection lost in DATA; nothing queued", s->addr);
	if (what & BEV_EVENT_ERROR)
		smtp_sess_tls_error(s);
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		smtp_sess_half_closed(s);
		smtp_sess_flush(s);
		return;
	}
	smtp_sess_free(s);
}

/* A half-closed client still gets its replies, then the session ends. */
static void smtp_sess_half_closed(struct smtp_session *s)
{
	s->eof = 1;
	s->closing = 1;
	s->state = ST_HELO;
}

/* After a batch of input: close if asked, or pause reading while the client
 * does not read its replies. The replies themselves go out in one write
 * when the event loop runs (RFC 2920 grouping). */
static void smtp_sess_flush(struct smtp_session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	if (s->closing) {
		bufferevent_disable(s->bev, EV_READ);
		if (evbuffer_get_length(out) == 0)
			smtp_sess_free(s);
		else
			bufferevent_setcb(s->bev, NULL, smtp_sess_close_when_written,
					  smtp_sess_event_cb, s);
		return;
	}
	if (evbuffer_get_length(out) > SMTP_OUT_HIGH) {
		bufferevent_disable(s->bev, EV_READ);
		bufferevent_setcb(s->bev, smtp_sess_read_cb, smtp_sess_output_drained,
				  smtp_sess_event_cb, s);
	}
}

/* ---------------------------------------------------- per-client limits */

/* Counts a MAIL or connection of s: a client outside the exemptions gets no
 * entry (and no limit). */
static int srv_client_limited(const struct smtp_server *srv, const struct smtp_session *s)
{
	const struct config *cfg = s->cfg;

	if (s->in_mynetworks && cfg->client_limits_exempt_mynetworks)
		return 0;
	return cfg->max_connections_per_client > 0 || cfg->max_connection_rate_per_client > 0 ||
	       cfg->max_messages_per_client > 0;
}

/* Event 2016 for c, at most once a minute per client. */
static void srv_client_event(struct anvil_client *c, const char *addr, const char *limit,
			     const char *what)
{
	const char *kv[] = {"client", addr, "limit", limit, NULL};
	int suppressed;

	if (anvil_warn(c, clock_now(), &suppressed))
		event_logkv(EV_CLIENT_LIMIT, kv,
			    "Client %s refused: %s (%d more refusals not logged)", addr, what,
			    suppressed);
}

/* 1 if the new connection of s went over a per-client limit (421 sent, fd
 * closed); else 0, with s->client counting it until the session ends. */
static int srv_client_over(struct smtp_server *srv, struct smtp_session *s, evutil_socket_t fd)
{
	const struct config *cfg = s->cfg;
	char msg[160];
	const char *limit = NULL, *what = NULL;
	int conns, rate;

	if (!srv_client_limited(srv, s))
		return 0;
	s->client = anvil_connect(srv->anvil, s->addr, clock_now(), &conns, &rate);
	if (cfg->max_connections_per_client > 0 && conns > cfg->max_connections_per_client) {
		limit = "connections";
		what = "too many connections";
	} else if (cfg->max_connection_rate_per_client > 0 &&
		   rate > cfg->max_connection_rate_per_client) {
		limit = "connection-rate";
		what = "too many connections per minute";
	}
	if (limit == NULL)
		return 0;
	snprintf(msg, sizeof(msg), "421 4.7.0 %s Error: %s from %s, try again later\r\n",
		 cfg->hostname, what, s->addr);
	if (send(fd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
		log_debug("smtp: %s: refusal not sent: %s", s->addr, strerror(errno));
	evutil_closesocket(fd);
	srv_client_event(s->client, s->addr, limit, what);
	anvil_disconnect(s->client, clock_now());
	s->client = NULL;
	return 1;
}

/* MAIL from s: 1 (421 queued, closing) if that is over
 * max_messages_per_client. */
static int smtp_sess_messages_over(struct smtp_session *s)
{
	int max = s->cfg->max_messages_per_client;

	if (s->client == NULL || max <= 0 || anvil_message(s->client, clock_now()) <= max)
		return 0;
	srv_client_event(s->client, s->addr, "messages", "too many messages per minute");
	smtp_sess_reply(s, "421 4.7.0 %s Error: too many messages from %s, try again later",
			s->srv->cfg->hostname, s->addr);
	s->closing = 1;
	return 1;
}

/* ------------------------------------------------------------ disk space */

static void srv_disk_low(struct smtp_server *srv, const char *detail)
{
	if (srv->disk_low)
		return;
	srv->disk_low = 1;
	event_log(EV_DISK_LOW,
		  "Free disk space for the queue in %s is low (%s); mail is refused "
		  "with 452 4.3.1 until space is freed",
		  queue_dir(srv->q), detail);
}

/* 1 if the queue's file system has at least min_free_space free. */
static int srv_disk_ok(struct smtp_server *srv)
{
	unsigned long long avail;
	char detail[64];

	if (fs_free_bytes(queue_dir(srv->q), &avail) < 0) {
		log_warn("smtp: cannot check free space in %s", queue_dir(srv->q));
		return 1;
	}
	if (avail < srv->cfg->min_free_space) {
		snprintf(detail, sizeof(detail), "%llu bytes free", avail);
		srv_disk_low(srv, detail);
		return 0;
	}
	if (srv->disk_low) {
		srv->disk_low = 0;
		event_log(EV_DISK_OK,
			  "Free disk space for the queue in %s is back (%llu bytes); "
			  "mail is accepted again",
			  queue_dir(srv->q), avail);
	}
	return 1;
}

/* ------------------------------------------------------------- EHLO/HELO */

/* Service extensions, in the order EHLO lists them; "offered" decides per
 * session (STARTTLS only before TLS, AUTH only over TLS unless allowed). */
struct smtp_ext {
	const char *name;
	void (*param)(const struct smtp_session *s, struct buf *out); /* appends " value" */
	int (*offered)(const struct smtp_session *s);		      /* NULL: always */
};

static void ext_size(const struct smtp_session *s, struct buf *out)
{
	buf_printf(out, " %llu", (unsigned long long)s->srv->cfg->max_message_size);
}

static int ext_starttls_offered(const struct smtp_session *s)
{
	return s->srv->tls_ctx != NULL && !s->tls;
}

/* A submission or submissions port: AUTH before MAIL, TLS before AUTH. */
static int smtp_sess_submission(const struct smtp_session *s)
{
	return s->lst && listener_auth_required(s->lst);
}

/* AUTH needs a users table, and TLS unless auth_allow_plaintext (never on
 * a submission port); the ODMR port offers CRAM-MD5 without TLS too
 * (RFC 2645 requires AUTH). */
static int smtp_sess_auth_allowed(const struct smtp_session *s)
{
	const struct config *cfg = s->srv->cfg;

	if (!smtp_auth_enabled(cfg))
		return 0;
	if (smtp_sess_submission(s))
		return s->tls;
	return s->tls || cfg->auth_allow_plaintext || s->srv->odmr;
}

/* Only CRAM-MD5 where the others would send the password in clear. */
static int smtp_sess_auth_cram_only(const struct smtp_session *s)
{
	return s->srv->odmr && !s->tls && !s->srv->cfg->auth_allow_plaintext;
}

static void ext_auth(const struct smtp_session *s, struct buf *out)
{
	buf_printf(out, " %s",
		   smtp_sess_auth_cram_only(s) ? "CRAM-MD5" : smtp_auth_mechanisms(s->srv->cfg));
}

static int ext_atrn_offered(const struct smtp_session *s)
{
	return s->srv->odmr;
}

static int ext_etrn_offered(const struct smtp_session *s)
{
	return s->srv->etrn != NULL;
}

/* DSN (RFC 3461) where mail is taken: not on the ODMR port. */
static int ext_dsn_offered(const struct smtp_session *s)
{
	return !s->srv->odmr;
}

/* XDMBATCH (docs/batch-protocol.md): only to dialmail peers, i.e. clients
 * in batch_networks (on the ODMR port after AUTH, as MAIL) and adopted
 * sessions whose peer is known to be dialmail (SMTP_ADOPT_DIALMAIL). */
static int ext_xdmbatch_offered(const struct smtp_session *s)
{
	return s->srv->cfg->batch_transfer && s->batch_peer;
}

static void ext_xdmbatch(const struct smtp_session *s, struct buf *out)
{
	batch_server_ehlo_params(out);
	if (s->srv->duplex)
		buf_puts(out, " DUPLEX");
}

static const struct smtp_ext smtp_exts[] = {
    {"PIPELINING", NULL, NULL},
    {"SIZE", ext_size, NULL},
    {"8BITMIME", NULL, NULL},
    {"ENHANCEDSTATUSCODES", NULL, NULL},
    {"STARTTLS", NULL, ext_starttls_offered},
    {"AUTH", ext_auth, smtp_sess_auth_allowed},
    {"CHUNKING", NULL, NULL},
    {"ETRN", NULL, ext_etrn_offered},
    {"ATRN", NULL, ext_atrn_offered},
    {"DSN", NULL, ext_dsn_offered},
    {"XDMBATCH", ext_xdmbatch, ext_xdmbatch_offered},
};

#define N_EXTS (sizeof(smtp_exts) / sizeof(smtp_exts[0]))

/* A HELO/EHLO argument: one word of printable ASCII. */
static int helo_arg_ok(const char *arg)
{
	size_t n = strlen(arg);

	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (arg[i] < 0x21 || arg[i] > 0x7e)
			return 0;
	return 1;
}

static int smtp_sess_helo_common(struct smtp_session *s, const char *arg, const char *verb)
{
	if (!helo_arg_ok(arg)) {
		smtp_sess_error(s, "501 5.5.4 Syntax: %s hostname", verb);
		return -1;
	}
	free(s->helo);
	s->helo = xstrdup(arg);
	s->state = ST_HELO;
	smtp_sess_txn_reset(s);
	return 0;
}

static void cmd_ehlo(struct smtp_session *s, const char *arg)
{
	const struct smtp_ext *offer[N_EXTS];
	size_t n = 0;
	struct buf line = BUF_INIT;

	if (smtp_sess_helo_common(s, arg, "EHLO") < 0)
		return;
	s->esmtp = 1;
	for (size_t i = 0; i < N_EXTS; i++)
		if (smtp_exts[i].offered == NULL || smtp_exts[i].offered(s))
			offer[n++] = &smtp_exts[i];
	smtp_sess_reply(s, "250%c%s", n ? '-' : ' ', s->srv->cfg->hostname);
	for (size_t i = 0; i < n; i++) {
		buf_reset(&line);
		buf_puts(&line, offer[i]->name);
		if (offer[i]->param)
			offer[i]->param(s, &line);
		smtp_sess_reply(s, "250%c%s", i + 1 < n ? '-' : ' ', buf_cstr(&line));
	}
	buf_free(&line);
}

static void cmd_helo(struct smtp_session *s, const char *arg)
{
	if (smtp_sess_helo_common(s, arg, "HELO") < 0)
		return;
	s->esmtp = 0;
	smtp_sess_reply(s, "250 %s", s->srv->cfg->hostname);
}

/* ------------------------------------------------------------------ MAIL */

/* "FROM:" / "TO:" (case-insensitive), then blanks some clients add. */
static int arg_prefix(const char **arg, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncasecmp(*arg, prefix, n) != 0)
		return 0;
	*arg += n;
	while (**arg == ' ')
		(*arg)++;
	return 1;
}

static int mail_param_size(struct smtp_session *s, const char *v)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = v ? strtoull(v, &end, 10) : 0;
	if (v == NULL || v[0] < '0' || v[0] > '9' || *end || errno == ERANGE || strlen(v) > 20) {
		smtp_sess_error(s, "501 5.5.4 Bad SIZE parameter");
		return -1;
	}
	if (n > s->srv->cfg->max_message_size) {
		smtp_sess_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return -1;
	}
	return 0;
}

static int mail_param_body(struct smtp_session *s, const char *v)
{
	if (v && (strcasecmp(v, "7BIT") == 0 || strcasecmp(v, "8BITMIME") == 0))
		return 0;
	smtp_sess_error(s, "501 5.5.4 Bad BODY parameter");
	return -1;
}

/* AUTH=<mailbox> (RFC 4954 5): accepted and not passed on. */
static int mail_param_auth(struct smtp_session *s, const char *v)
{
	if (v && *v)
		return 0;
	smtp_sess_error(s, "501 5.5.4 Bad AUTH parameter");
	return -1;
}

/* DSN RET=FULL|HDRS (RFC 3461 4.3), kept in the envelope. */
static int mail_param_ret(struct smtp_session *s, const char *v)
{
	if (v && strcasecmp(v, "FULL") == 0)
		s->env.ret = Q_RET_FULL;
	else if (v && strcasecmp(v, "HDRS") == 0)
		s->env.ret = Q_RET_HDRS;
	else {
		smtp_sess_error(s, "501 5.5.4 Bad RET parameter (FULL or HDRS)");
		return -1;
	}
	return 0;
}

/* DSN ENVID=xtext (RFC 3461 4.4): at most 100 characters, stored as given. */
static int mail_param_envid(struct smtp_session *s, const char *v)
{
	if (v == NULL || !dsn_xtext_valid(v, 100)) {
		smtp_sess_error(s, "501 5.5.4 Bad ENVID parameter");
		return -1;
	}
	free(s->env.envid);
	s->env.envid = xstrdup(v);
	return 0;
}

/* MAIL parameters we support. */
static const struct {
	const char *keyword;
	int (*check)(struct smtp_session *s, const char *value);
} mail_params[] = {
    {"SIZE", mail_param_size}, {"BODY", mail_param_body},   {"AUTH", mail_param_auth},
    {"RET", mail_param_ret},   {"ENVID", mail_param_envid},
};

/* 1 (after a 501) if the parameter at i repeats an earlier one. */
static int params_duplicate(struct smtp_session *s, const struct smtp_params *ps, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcasecmp(ps->v[j].keyword, ps->v[i].keyword) == 0) {
			smtp_sess_error(s, "501 5.5.4 Duplicate %s parameter", ps->v[i].keyword);
			return 1;
		}
	return 0;
}

static int mail_params_check(struct smtp_session *s, const struct smtp_params *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		size_t k;

		if (params_duplicate(s, ps, i))
			return -1;
		for (k = 0; k < sizeof(mail_params) / sizeof(mail_params[0]); k++)
			if (strcasecmp(ps->v[i].keyword, mail_params[k].keyword) == 0)
				break;
		if (k == sizeof(mail_params) / sizeof(mail_params[0])) {
			smtp_sess_error(s, "555 5.5.4 Unsupported option: %s", ps->v[i].keyword);
			return -1;
		}
		if (mail_params[k].check(s, ps->v[i].value) < 0)
			return -1;
	}
	return 0;
}

/* transfer_mode none and outbound-only accept no mail (issue 3). */
static int srv_accepts_nothing(const struct smtp_server *srv)
{
	enum transfer_mode m = routes_transfer_mode(srv->cfg->transfer_mode);

	return m == TRANSFER_NONE || m == TRANSFER_OUTBOUND_ONLY;
}

static void cmd_mail(struct smtp_session *s, const char *arg)
{
	struct smtp_path p;
	struct smtp_params ps;
	const char *end, *why;

	/* RFC 2645: the ODMR port takes no mail, except from an authenticated
	 * site sending its own outbound mail on the same call (data = direct,
	 * docs/odmr.md). */
	if (s->srv->odmr && s->auth_user == NULL) {
		smtp_sess_error(
		    s, "502 5.5.1 MAIL not accepted on the ODMR port before AUTH; use ATRN");
		return;
	}
	if (smtp_sess_submission(s) && s->auth_user == NULL) {
		smtp_sess_error(s, "530 5.7.0 Authentication required");
		return;
	}
	if (smtp_sess_messages_over(s))
		return;
	if (!arg_prefix(&arg, "FROM:")) {
		smtp_sess_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (smtp_path_parse(arg, 1, &p, &end, &why) < 0) {
		smtp_sess_error(s, "501 5.1.7 Bad sender address syntax: %s", why);
		return;
	}
	if (smtp_params_parse(end, &ps, &why) < 0)
		smtp_sess_error(s, "501 5.5.4 Syntax error in parameters: %s", why);
	else if (mail_params_check(s, &ps) < 0)
		;
	else if (!srv_disk_ok(s->srv))
		smtp_sess_reply(s, "452 4.3.1 Insufficient system storage");
	else if (srv_accepts_nothing(s->srv))
		smtp_sess_reply(s, "450 4.3.2 Not accepting mail now (transfer_mode %s)",
				s->srv->cfg->transfer_mode);
	else {
		s->env.sender = xstrdup(p.mailbox);
		s->state = ST_MAIL;
		smtp_sess_reply(s, "250 2.1.0 Ok");
	}
	if (s->state != ST_MAIL) /* a refused MAIL leaves no RET or ENVID behind */
		smtp_sess_txn_reset(s);
	smtp_params_free(&ps);
	smtp_path_free(&p);
}

/* ------------------------------------------------------------------ RCPT */

static void rcpt_accept(struct smtp_session *s, const char *mailbox)
{
	for (size_t i = 0; i < s->env.nrcpt; i++)
		if (strcmp(s->env.rcpt[i].addr, mailbox) == 0)
			goto ok; /* a duplicate is accepted once */
	q_env_add_rcpt(&s->env, mailbox);
ok:
	s->state = ST_RCPT;
	smtp_sess_reply(s, "250 2.1.5 Ok");
}

static void rcpt_relay_denied(struct smtp_session *s, const char *mailbox)
{
	const char *kv[] = {"client", s->addr, "from", s->env.sender, "to", mailbox, NULL};

	event_logkv(EV_RELAY_DENIED, kv,
		    "Relay access denied: client %s, sender <%s>, recipient <%s>", s->addr,
		    s->env.sender, mailbox);
	smtp_sess_reply(s, "554 5.7.1 <%s>: Relay access denied", mailbox);
}

static void rcpt_unknown(struct smtp_session *s, const char *mailbox)
{
	const char *kv[] = {"client", s->addr, "from", s->env.sender, "to", mailbox, NULL};

	event_logkv(EV_UNKNOWN_RECIPIENT, kv,
		    "Unknown local recipient <%s> refused (client %s, sender <%s>)", mailbox,
		    s->addr, s->env.sender);
	smtp_sess_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", mailbox);
}

/* Clients in mynetworks and authenticated clients may relay. */
static int smtp_sess_may_relay(const struct smtp_session *s)
{
	return s->in_mynetworks || s->auth_user != NULL;
}

/* Relay control (policy_rcpt). */
static void rcpt_policy(struct smtp_session *s, const struct smtp_path *p)
{
	switch (policy_rcpt(s->srv->cfg, smtp_sess_may_relay(s), p)) {
	case POLICY_RCPT_OK:
		rcpt_accept(s, p->mailbox);
		break;
	case POLICY_RCPT_UNKNOWN:
		if (s->local_user) { /* sendmail: delivery bounces it, as Postfix does */
			rcpt_accept(s, p->mailbox);
			break;
		}
		rcpt_unknown(s, p->mailbox);
		break;
	default:
		rcpt_relay_denied(s, p->mailbox);
	}
}

/* RFC 5321 4.1.1.3: "<Postmaster>" without a domain must be accepted. */
static int rcpt_postmaster(struct smtp_session *s, const char *arg, struct smtp_path *p,
			   const char **end)
{
	const struct config *cfg = s->srv->cfg;
	const char *dom = cfg->local_domains.n ? cfg->local_domains.v[0] : cfg->hostname;

	if (strncasecmp(arg, "<postmaster>", 12) != 0)
		return -1;
	memset(p, 0, sizeof(*p));
	p->local = xstrdup("postmaster");
	p->domain = xstrdup(dom);
	p->mailbox = xasprintf("postmaster@%s", dom);
	*end = arg + 12;
	return 0;
}

/* DSN NOTIFY and ORCPT (RFC 3461 4.1, 4.2); anything else is refused.
 * 0 with the values (orcpt points into ps), or -1 after the error reply. */
static int rcpt_params_check(struct smtp_session *s, const struct smtp_params *ps, unsigned *notify,
			     const char **orcpt)
{
	*notify = 0;
	*orcpt = NULL;
	for (size_t i = 0; i < ps->n; i++) {
		const char *k = ps->v[i].keyword, *v = ps->v[i].value;

		if (params_duplicate(s, ps, i))
			return -1;
		if (strcasecmp(k, "NOTIFY") == 0) {
			if (v == NULL || dsn_notify_parse(v, notify) < 0) {
				smtp_sess_error(s, "501 5.5.4 Bad NOTIFY parameter "
						   "(NEVER, or SUCCESS, FAILURE, DELAY)");
				return -1;
			}
		} else if (strcasecmp(k, "ORCPT") == 0) {
			if (v == NULL || !dsn_orcpt_valid(v)) {
				smtp_sess_error(s,
						"501 5.5.4 Bad ORCPT parameter (addr-type;xtext)");
				return -1;
			}
			*orcpt = v;
		} else {
			smtp_sess_error(s, "555 5.5.4 Unsupported option: %s", k);
			return -1;
		}
	}
	return 0;
}

static void cmd_rcpt(struct smtp_session *s, const char *arg)
{
	struct smtp_path p;
	struct smtp_params ps;
	const char *end, *why, *orcpt;
	unsigned notify;

	if (!arg_prefix(&arg, "TO:")) {
		smtp_sess_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (s->env.nrcpt >= (size_t)s->srv->cfg->max_recipients) {
		smtp_sess_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (rcpt_postmaster(s, arg, &p, &end) < 0 && smtp_path_parse(arg, 0, &p, &end, &why) < 0) {
		smtp_sess_error(s, "501 5.1.3 Bad recipient address syntax: %s", why);
		return;
	}
	if (smtp_params_parse(end, &ps, &why) < 0)
		smtp_sess_error(s, "501 5.5.4 Syntax error in parameters: %s", why);
	else if (rcpt_params_check(s, &ps, &notify, &orcpt) == 0) {
		size_t before = s->env.nrcpt;
		rcpt_policy(s, &p);
		if (s->env.nrcpt > before) { /* accepted as a new recipient */
			s->env.rcpt[before].notify = notify;
			s->env.rcpt[before].orcpt = orcpt ? xstrdup(orcpt) : NULL;
		}
	}
	smtp_params_free(&ps);
	smtp_path_free(&p);
}

/* ------------------------------------------------------------------ DATA */

static void smtp_sess_queued(struct smtp_session *s, const char *msgid)
{
	const struct q_env *e = &s->env;
	char size[32], nrcpt[32];
	const char *kv[] = {
	    "qid",  e->id, "from",  e->sender, "client", s->addr, "message-id", msgid ? msgid : "",
	    "size", size,  "nrcpt", nrcpt,     NULL};

	snprintf(size, sizeof(size), "%llu", (unsigned long long)e->size);
	snprintf(nrcpt, sizeof(nrcpt), "%zu", e->nrcpt);
	smtp_sess_reply(s, "250 2.0.0 Ok: queued as %s", e->id);
	event_logkv(EV_MESSAGE_RECEIVED, kv,
		    "Message %s received from %s: sender <%s>, %zu recipient(s), %s bytes", e->id,
		    s->addr, e->sender, e->nrcpt, size);
	for (size_t i = 0; i < e->nrcpt; i++)
		track(TRK_RECEIVED, e->id, msgid, e->sender, e->rcpt[i].addr, s->addr);
	if (s->srv->on_commit)
		s->srv->on_commit(e->id, s->inbound, s->srv->arg);
}

static void smtp_sess_commit_failed(struct smtp_session *s, int rc, int err)
{
	const char *kv[] = {"client", s->addr, "error", strerror(err), NULL};

	if (rc == Q_TEMPFAIL && err == ENOSPC) {
		srv_disk_low(s->srv, strerror(err));
		smtp_sess_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	event_logkv(EV_QUEUE_WRITE_FAILED, kv,
		    "Message from %s (sender <%s>) could not be queued: %s", s->addr, s->env.sender,
		    strerror(err));
	if (rc == Q_TEMPFAIL)
		smtp_sess_reply(s, "451 4.3.0 Error: queue file write error");
	else
		smtp_sess_reply(s, "554 5.3.0 Error: the queue refused the message");
}

/* Trace header, and a Message-ID for our own networks' mail that has none. */
static char *smtp_sess_build_head(struct smtp_session *s, struct buf *head)
{
	const struct config *cfg = s->srv->cfg;
	struct buf *c = &s->data.content;
	/* Complete lines only: when the content spills to a file, what is
	 * in memory may end inside a header field. */
	const char *nl = c->len ? memrchr(c->data, '\n', c->len) : NULL;
	char *msgid =
	    nl ? msg_header_value(c->data, (size_t)(nl + 1 - c->data), "Message-ID") : NULL;
	char proto[16]; /* RFC 3848: ESMTPS with TLS, ESMTPA authenticated */

	snprintf(proto, sizeof(proto), "%s%s%s", s->esmtp ? "ESMTP" : "SMTP",
		 s->esmtp && s->tls ? "S" : "", s->esmtp && s->auth_user ? "A" : "");
	msg_received(head, s->helo, s->addr, cfg->hostname, proto, s->env.id,
		     s->env.nrcpt == 1 ? s->env.rcpt[0].addr : NULL, clock_now());
	if (msgid == NULL && smtp_sess_may_relay(s)) {
		struct buf id = BUF_INIT;

		msg_make_message_id(&id, s->env.id, cfg->hostname);
		buf_printf(head, "Message-ID: %s\r\n", buf_cstr(&id));
		msgid = buf_steal(&id);
	}
	return msgid;
}

/* Sends the outcome of a committed (or failed) message; a gone client gets
 * no reply, but a queued message is still logged and handed on. */
static void smtp_sess_commit_done(struct smtp_session *s, const struct q_result *res)
{
	if (res->status == Q_OK)
		smtp_sess_queued(s, s->env.message_id);
	else
		smtp_sess_commit_failed(s, res->status, res->err);
	smtp_sess_txn_reset(s);
}

/* After the commit: go on with the input that waited, or end the session. */
static void smtp_sess_resume(struct smtp_session *s)
{
	s->parked = 0;
	if (s->gone) {
		smtp_sess_free(s);
		return;
	}
	if (!s->eof)
		bufferevent_enable(s->bev, EV_READ);
	smtp_sess_read_cb(s->bev, s);
}

/* Answers and resumes each session of a committed batch. The batch is
 * no longer the staging one: resumed sessions may park again there. */
static void srv_batch_finish(struct srv_batch *sb)
{
	size_t n = sb->n;

	sb->n = 0;
	for (size_t i = 0; i < n; i++)
		smtp_sess_commit_done(sb->parked[i], &sb->res[i]);
	for (size_t i = 0; i < n; i++)
		smtp_sess_resume(sb->parked[i]);
}

/* Hands the staging batch to the committer thread if it is idle (else
 * the end of the batch in flight does it), and starts a new one. Without
 * the thread, commits right here. */
static void srv_batch_handover(struct smtp_server *srv)
{
	struct srv_batch *sb = srv->staging;

	if (srv->inflight != NULL || sb->n == 0)
		return;
	srv->staging = sb == &srv->bat[0] ? &srv->bat[1] : &srv->bat[0];
	if (srv->qc && queue_committer_start(srv->qc, sb->b, sb->res) == 0) {
		srv->inflight = sb;
		return;
	}
	queue_batch_commit(sb->b, sb->res);
	srv_batch_finish(sb);
}

static void srv_batch_cb(evutil_socket_t fd, short what, void *arg)
{
	srv_batch_handover(arg);
}

/* The committer finished the batch in flight: the next one goes to it at
 * once, then the sessions of this one get their replies. */
static void srv_batch_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;
	struct srv_batch *sb = srv->inflight;

	if (sb == NULL || queue_committer_done(srv->qc, 0) == NULL)
		return;
	srv->inflight = NULL;
	srv_batch_handover(srv);
	srv_batch_finish(sb);
}

static void srv_batch_push(struct srv_batch *sb, struct smtp_session *s)
{
	if (sb->n == sb->cap) {
		sb->cap = sb->cap ? 2 * sb->cap : 16;
		sb->parked = xrealloc(sb->parked, sb->cap * sizeof(*sb->parked));
		sb->res = xrealloc(sb->res, sb->cap * sizeof(*sb->res));
	}
	sb->parked[sb->n++] = s;
}

/* Stages the message and parks the session until its batch is committed.
 * A 0-second timer hands the batch over: timers run after this loop pass's
 * read callbacks and the next poll, so sessions finishing together share
 * the syncs; while a batch is in flight, the next one fills meanwhile. */
static void smtp_sess_park(struct smtp_session *s, int rc)
{
	struct smtp_server *srv = s->srv;
	struct timeval now = {0, 0};

	if (rc != Q_OK) {
		struct q_result res = {rc, errno};
		smtp_sess_commit_done(s, &res);
		return;
	}
	srv_batch_push(srv->staging, s);
	s->parked = 1;
	if (srv->inflight == NULL && !evtimer_pending(srv->ev_commit, NULL))
		evtimer_add(srv->ev_commit, &now);
}

/* The envelope's own fields, the queue id and the trace header (which
 * names the id) into head; the content has to be as long as the header
 * section for the Message-ID to be found. */
static void smtp_sess_envelope(struct smtp_session *s, struct buf *head)
{
	queue_new_id(s->env.id);
	s->env.message_id = smtp_sess_build_head(s, head);
	s->env.client = xstrdup(s->addr);
	s->env.helo = xstrdup(s->helo);
}

/* The content outgrew memory (smtp_data.h): the message goes on in the
 * queue's temp file, trace header first. */
static int smtp_sess_spill(struct data_rx *d, void *arg)
{
	struct smtp_session *s = arg;
	struct buf head = BUF_INIT;
	int rc = 0;

	smtp_sess_envelope(s, &head);
	d->stream = queue_stream_open(s->srv->q, &s->env);
	if (d->stream == NULL || queue_stream_write(d->stream, head.data, head.len) < 0)
		rc = -1;
	buf_free(&head);
	return rc;
}

/* Stages the message in the group commit: a streamed one is finished in
 * its temp file, a short one written in one go. */
static void smtp_sess_commit(struct smtp_session *s)
{
	struct data_rx *d = &s->data;
	struct buf head = BUF_INIT;
	struct iovec iov[2];
	int rc;

	if (d->stream != NULL) {
		rc = queue_batch_add_stream(s->srv->staging->b, d->stream, &s->env);
		d->stream = NULL;
	} else {
		smtp_sess_envelope(s, &head);
		iov[0].iov_base = head.data;
		iov[0].iov_len = head.len;
		iov[1].iov_base = d->content.data;
		iov[1].iov_len = d->content.len;
		rc = queue_batch_add(s->srv->staging->b, &s->env, iov, 2);
		buf_free(&head);
	}
	smtp_sess_park(s, rc);
	data_rx_reset(d);
}

static void smtp_sess_data_refuse(struct smtp_session *s)
{
	static const char *const why[] = {
	    [DB_BARE_CRLF] = "bare CR or LF in message data",
	    [DB_NUL] = "NUL in message data",
	    [DB_LONG_LINE] = "line too long in message data",
	};
	const char *kv[] = {"client", s->addr,		"from", s->env.sender,
			    "reason", why[s->data.bad], NULL};

	event_logkv(s->data.bad == DB_BARE_CRLF ? EV_BARE_LINEFEED : EV_MESSAGE_REFUSED_BAD_DATA,
		    kv, "Message from %s (sender <%s>) refused: %s", s->addr, s->env.sender,
		    why[s->data.bad]);
	smtp_sess_reply(s, "550 5.6.0 Message refused: %s", why[s->data.bad]);
}

static void smtp_sess_data_too_big(struct smtp_session *s)
{
	char size[32];
	const char *kv[] = {"client", s->addr, "from", s->env.sender, "size", size, NULL};

	snprintf(size, sizeof(size), "%llu", (unsigned long long)s->data.size);
	event_logkv(EV_MESSAGE_TOO_BIG, kv,
		    "Message from %s (sender <%s>) refused: %s bytes exceed max_message_size %llu",
		    s->addr, s->env.sender, size, (unsigned long long)s->data.max);
	smtp_sess_reply(s, "552 5.3.4 Message size exceeds fixed limit");
}

static void smtp_sess_data_end(struct smtp_session *s)
{
	smtp_sess_command_phase(s);
	if (s->data.bad != DB_NONE)
		smtp_sess_data_refuse(s);
	else if (s->data.size > s->data.max)
		smtp_sess_data_too_big(s);
	else if (s->data.err != 0)
		smtp_sess_commit_failed(s, Q_TEMPFAIL, s->data.err);
	else if (!srv_disk_ok(s->srv))
		smtp_sess_reply(s, "452 4.3.1 Insufficient system storage");
	else
		smtp_sess_commit(s);
	s->state = ST_HELO;
	if (!s->parked) /* else the envelope is needed for the reply */
		smtp_sess_txn_reset(s);
}

static void smtp_sess_data_input(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec v;
	int done = 0;

	while (!done && evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
		size_t n = data_rx_scan(&s->data, v.iov_base, v.iov_len, &done);

		s->rate_bytes += n;
		evbuffer_drain(in, n);
	}
	if (done)
		smtp_sess_data_end(s);
}

static void cmd_data(struct smtp_session *s, const char *arg)
{
	struct data_rx *d = &s->data;

	if (*arg) {
		smtp_sess_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	data_rx_begin(d, s->srv->cfg->max_message_size, 0);
	s->state = ST_DATA;
	smtp_sess_data_phase(s);
	smtp_sess_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* ------------------------------------------------------------------ BDAT */

/* "size [LAST]"; -1 on a syntax error. */
static int bdat_parse(const char *arg, uint64_t *size, int *last)
{
	size_t digits = strspn(arg, "0123456789");
	const char *rest = arg + digits;
	char *end;

	if (digits == 0 || digits > 20 || (*rest && *rest != ' '))
		return -1;
	errno = 0;
	*size = strtoull(arg, &end, 10);
	if (errno == ERANGE)
		return -1;
	while (*rest == ' ')
		rest++;
	*last = strcasecmp(rest, "LAST") == 0;
	return *rest == '\0' || *last ? 0 : -1;
}

/* The first chunk of a transaction. BDAT content (RFC 3030) has no end
 * mark to smuggle, but it goes into the same queue as DATA content and may
 * leave by DATA: the same rules hold (smtp_data.h), so the queue never holds
 * a bare CR or LF that a next hop could take as the end of data. */
static void bdat_begin(struct smtp_session *s)
{
	data_rx_begin(&s->data, s->srv->cfg->max_message_size, 1);
	s->state = ST_BDAT;
}

static const char *bdat_sequence_error(const struct smtp_session *s)
{
	if (s->state == ST_CONNECT)
		return "503 5.5.1 Error: send HELO/EHLO first";
	if (s->state == ST_HELO)
		return "503 5.5.1 Error: need MAIL command";
	return "503 5.5.1 Error: need RCPT command";
}

/* LAST chunk in: the same end as DATA (checks, group commit, 250 once
 * durable). Content that does not end in CRLF gets one. */
static void bdat_last(struct smtp_session *s)
{
	data_rx_last(&s->data);
	smtp_sess_data_end(s);
}

/* The announced octets of a chunk are in: the reply it was owed. */
static void smtp_sess_bdat_chunk_end(struct smtp_session *s)
{
	struct bdat_rx *b = &s->bdat;

	b->reading = 0;
	smtp_sess_command_phase(s);
	if (b->refuse == BR_SEQUENCE)
		smtp_sess_error(s, "%s", b->why);
	else if (b->refuse == BR_TOO_BIG) {
		smtp_sess_data_too_big(s);
		smtp_sess_txn_reset(s); /* later chunks of it get 503 */
	} else if (!b->last)
		smtp_sess_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)b->size);
	else
		bdat_last(s);
}

static void smtp_sess_bdat_input(struct smtp_session *s, struct evbuffer *in)
{
	struct bdat_rx *b = &s->bdat;
	struct evbuffer_iovec v;

	while (b->left > 0 && evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
		size_t n = v.iov_len < b->left ? v.iov_len : (size_t)b->left;

		if (b->refuse == BR_NONE)
			data_rx_chunk(&s->data, v.iov_base, n);
		evbuffer_drain(in, n);
		s->rate_bytes += n;
		b->left -= n;
	}
	if (b->left == 0)
		smtp_sess_bdat_chunk_end(s);
}

static void cmd_bdat(struct smtp_session *s, const char *arg)
{
	struct bdat_rx *b = &s->bdat;
	struct data_rx *d = &s->data;

	memset(b, 0, sizeof(*b));
	if (bdat_parse(arg, &b->size, &b->last) < 0) {
		smtp_sess_error(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	b->left = b->size;
	b->reading = 1;
	if (s->state != ST_RCPT && s->state != ST_BDAT) {
		b->refuse = BR_SEQUENCE;
		b->why = bdat_sequence_error(s);
	} else {
		if (s->state == ST_RCPT)
			bdat_begin(s);
		if (b->size > d->max - d->size) {
			b->refuse = BR_TOO_BIG;
			d->size += b->size;
		}
	}
	smtp_sess_data_phase(s);
	if (b->left == 0)
		smtp_sess_bdat_chunk_end(s);
}

/* -------------------------------------------------------------- STARTTLS */

static void cmd_starttls(struct smtp_session *s, const char *arg)
{
	if (*arg) {
		smtp_sess_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls) {
		smtp_sess_error(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->srv->tls_ctx == NULL) {
		smtp_sess_reply(s, "454 4.7.0 TLS not available");
		return;
	}
	smtp_sess_reply(s, "220 2.0.0 Ready to start TLS");
	s->starttls = 1;
}

/* Plaintext the client sent after STARTTLS is dropped, never run inside
 * TLS (STARTTLS command injection, CVE-2011-0411). */
static void smtp_sess_tls_discard(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t n = evbuffer_get_length(in);
	const char *kv[] = {"client", s->addr, NULL};

	if (n == 0)
		return;
	evbuffer_drain(in, n);
	event_logkv(EV_STARTTLS_INJECTION, kv,
		    "Client %s sent %zu octets after STARTTLS before the TLS handshake; they "
		    "were discarded (STARTTLS command injection)",
		    s->addr, n);
}

/* RFC 3207 4.2: after the handshake the session starts over; the client
 * must EHLO again, and nothing it said before counts (AUTH included). */
static void smtp_sess_tls_reset(struct smtp_session *s)
{
	s->tls = 1;
	s->esmtp = 0;
	free(s->helo);
	s->helo = NULL;
	free(s->auth_user);
	s->auth_user = NULL;
	q_env_free(&s->env);
	data_rx_reset(&s->data);
	s->state = ST_CONNECT;
}

/* The "220" is written: the socket moves to a TLS bufferevent (server
 * side of the handshake). */
static void smtp_sess_tls_switch(struct smtp_session *s)
{
	evutil_socket_t fd = bufferevent_getfd(s->bev);
	SSL *ssl = SSL_new(s->srv->tls_ctx);
	struct bufferevent *tb = NULL;

	smtp_sess_tls_discard(s);
	if (ssl)
		tb = bufferevent_openssl_socket_new(
		    s->srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		log_warnx("smtp: %s: cannot start TLS", s->addr);
		SSL_free(ssl);
		smtp_sess_free(s);
		return;
	}
	bufferevent_setfd(s->bev, -1); /* the socket is tb's now */
	bufferevent_free(s->bev);
	s->bev = tb;
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	smtp_sess_tls_reset(s);
	bufferevent_setcb(tb, smtp_sess_read_cb, NULL, smtp_sess_event_cb, s);
	smtp_sess_command_phase(s);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}

static void smtp_sess_tls_switch_cb(struct bufferevent *bev, void *arg)
{
	smtp_sess_tls_switch(arg);
}

/* After the input that held STARTTLS: stop reading, drop what came after
 * it, switch once the "220" (and any earlier replies) is written. */
static void smtp_sess_tls_begin(struct smtp_session *s)
{
	s->starttls = 0;
	bufferevent_disable(s->bev, EV_READ);
	smtp_sess_tls_discard(s);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		bufferevent_setcb(s->bev, NULL, smtp_sess_tls_switch_cb, smtp_sess_event_cb, s);
	else
		smtp_sess_tls_switch(s);
}

static void smtp_sess_tls_up(struct smtp_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	log_info("smtp: %s: TLS established: %s %s", s->addr, ssl ? SSL_get_version(ssl) : "?",
		 ssl ? SSL_get_cipher_name(ssl) : "?");
}

static void smtp_sess_tls_error(struct smtp_session *s)
{
	char msg[256];
	unsigned long e, last = 0;

	if (!s->tls)
		return;
	while ((e = bufferevent_get_openssl_error(s->bev)) != 0)
		last = e;
	if (last == 0)
		return;
	ERR_error_string_n(last, msg, sizeof(msg));
	log_info("smtp: %s: TLS failure: %s", s->addr, msg);
}

/* ------------------------------------------------------------------ AUTH */

static void auth_end(struct smtp_session *s)
{
	smtp_auth_free(s->sasl);
	s->sasl = NULL;
}

static void auth_succeeded(struct smtp_session *s)
{
	const char *user = smtp_auth_user(s->sasl), *mech = smtp_auth_mech(s->sasl);
	const char *kv[] = {"client", s->addr, "user", user, "mechanism", mech, NULL};

	s->auth_user = xstrdup(user);
	event_logkv(EV_AUTH_SUCCEEDED, kv, "Client %s authenticated as %s (%s)", s->addr, user,
		    mech);
	smtp_sess_reply(s, "235 2.7.0 Authentication successful");
	auth_end(s);
}

/* A failed exchange; the third one in a session closes it. */
static void auth_failed(struct smtp_session *s, const char *reply)
{
	const char *user = smtp_auth_user(s->sasl), *mech = smtp_auth_mech(s->sasl);
	const char *kv[] = {"client", s->addr, "user", user ? user : "", "mechanism", mech, NULL};

	event_logkv(EV_AUTH_FAILED, kv, "Authentication failed for client %s, user \"%s\" (%s): %s",
		    s->addr, user ? user : "", mech, reply + 10);
	smtp_sess_reply(s, "%s", reply);
	auth_end(s);
	if (++s->auth_failures >= SMTP_AUTH_MAX && !s->closing) {
		smtp_sess_reply(s, "421 4.7.0 %s Error: too many failed authentications",
				s->srv->cfg->hostname);
		s->closing = 1;
	}
}

/* The outcome of a step; ch: the challenge on CONTINUE. */
static void auth_result(struct smtp_session *s, enum smtp_auth_rc rc, const char *ch)
{
	switch (rc) {
	case SMTP_AUTH_PENDING:
		s->auth_wait = 1; /* input waits for Dovecot's answer */
		break;
	case SMTP_AUTH_TEMPFAIL:
		smtp_sess_reply(s, "454 4.7.0 Temporary authentication failure");
		auth_end(s);
		break;
	case SMTP_AUTH_CONTINUE:
		smtp_sess_reply(s, "334 %s", ch);
		break;
	case SMTP_AUTH_OK:
		auth_succeeded(s);
		break;
	case SMTP_AUTH_FAIL:
		auth_failed(s, "535 5.7.8 Authentication credentials invalid");
		break;
	case SMTP_AUTH_MALFORMED:
		auth_failed(s, "501 5.5.2 Cannot decode the authentication response");
		break;
	case SMTP_AUTH_CANCELLED:
		smtp_sess_reply(s, "501 5.7.0 Authentication cancelled");
		auth_end(s);
		break;
	}
}

/* One client line of the exchange (the initial response, or an answer). */
static void auth_feed(struct smtp_session *s, const char *response)
{
	struct buf ch = BUF_INIT;
	enum smtp_auth_rc rc = smtp_auth_step(s->sasl, response, &ch);

	auth_result(s, rc, buf_cstr(&ch));
	buf_free(&ch);
}

/* Dovecot answered (smtp/sasl_dovecot.c): the reply, then the input that
 * waited. */
static void auth_done(enum smtp_auth_rc rc, const char *challenge, void *arg)
{
	struct smtp_session *s = arg;

	s->auth_wait = 0;
	auth_result(s, rc, challenge ? challenge : "");
	smtp_sess_read_cb(s->bev, s);
}

/* An exchange with the table, or through Dovecot when it is configured. */
static struct smtp_auth_exchange *auth_start(struct smtp_session *s, const char *mech)
{
	const struct config *cfg = s->srv->cfg;
	struct smtp_auth_exchange *x;

	if (!cfg->auth_dovecot_socket || !*cfg->auth_dovecot_socket)
		x = smtp_auth_start(mech, cfg->auth_users, cfg->hostname);
	else
		x = smtp_auth_start_dovecot(cfg, s->srv->base, mech, s->addr, s->tls);
	if (x)
		smtp_auth_set_done(x, s->srv->base, auth_done, s);
	return x;
}

static void cmd_auth(struct smtp_session *s, const char *arg)
{
	const struct config *cfg = s->srv->cfg;
	char mech[32];
	size_t n = strcspn(arg, " ");
	const char *resp = arg + n;

	while (*resp == ' ')
		resp++;
	if (!smtp_auth_enabled(cfg))
		smtp_sess_error(s, "502 5.5.1 Error: authentication not enabled");
	else if (s->auth_user)
		smtp_sess_error(s, "503 5.5.1 Error: already authenticated");
	else if (!s->esmtp)
		smtp_sess_error(s, "503 5.5.1 Error: send EHLO first");
	else if (smtp_sess_submission(s) && !s->tls)
		smtp_sess_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
	else if (!smtp_sess_auth_allowed(s))
		smtp_sess_reply(s, "538 5.7.11 Encryption required for requested authentication "
				   "mechanism");
	else if (n == 0 || n >= sizeof(mech))
		smtp_sess_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
	else if (smtp_sess_auth_cram_only(s) && (n != 8 || strncasecmp(arg, "CRAM-MD5", 8) != 0))
		smtp_sess_reply(s, "538 5.7.11 Encryption required for requested authentication "
				   "mechanism");
	else {
		memcpy(mech, arg, n);
		mech[n] = '\0';
		s->sasl = auth_start(s, mech);
		if (s->sasl == NULL)
			smtp_sess_error(s, "504 5.5.4 Unrecognized authentication type");
		else
			auth_feed(s, *resp ? resp : NULL);
	}
}

/* ------------------------------------------------------- other commands */

static void cmd_rset(struct smtp_session *s, const char *arg)
{
	smtp_sess_txn_reset(s);
	smtp_sess_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, const char *arg)
{
	smtp_sess_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, const char *arg)
{
	s->quit_seen = 1;
	smtp_sess_reply(s, "221 2.0.0 Bye");
	s->closing = 1;
}

static void cmd_vrfy(struct smtp_session *s, const char *arg)
{
	if (*arg == '\0')
		smtp_sess_error(s, "501 5.5.4 Syntax: VRFY address");
	else
		smtp_sess_reply(s,
				"252 2.5.2 Cannot VRFY user, but will accept message and attempt "
				"delivery");
}

/* ETRN (RFC 1985): the hub decides and answers; delivery starts later. */
static void cmd_etrn(struct smtp_session *s, const char *arg)
{
	struct buf reply = BUF_INIT;

	if (s->srv->etrn == NULL) {
		smtp_sess_error(s, "502 5.5.1 ETRN is not offered here");
		return;
	}
	s->srv->etrn(s->addr, s->auth_user, arg, &reply, s->srv->etrn_arg);
	smtp_sess_reply(s, "%s", buf_cstr(&reply));
	buf_free(&reply);
}

/* ATRN (RFC 2645): after AUTH; on "250" the connection is handed over. */
static void cmd_atrn(struct smtp_session *s, const char *arg)
{
	struct buf reply = BUF_INIT;

	if (!s->srv->odmr)
		smtp_sess_error(s, "502 5.5.1 ATRN is not offered here");
	else if (s->auth_user == NULL)
		smtp_sess_reply(s, "530 5.7.0 Authentication required");
	else if (s->srv->atrn(s->addr, s->auth_user, arg, &reply, s->srv->odmr_arg) == 1) {
		smtp_sess_reply(s, "%s", buf_cstr(&reply));
		s->atrn_param = xstrdup(arg);
		s->reversed = 1;
	} else
		smtp_sess_reply(s, "%s", buf_cstr(&reply));
	buf_free(&reply);
}

/* XDMBATCH: taken over by batch_server.c once this read's commands are
 * done (smtp_sess_batch_begin), so no batch byte is read as a command. */
static void cmd_xdmbatch(struct smtp_session *s, const char *arg)
{
	if (!ext_xdmbatch_offered(s)) {
		smtp_sess_error(s, "502 5.5.1 XDMBATCH is not offered here");
		return;
	}
	if (s->srv->odmr && s->auth_user == NULL) {
		smtp_sess_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	free(s->batch_arg);
	s->batch_arg = xstrdup(arg);
	s->batch = 1;
}

/* The "250" to ATRN is queued: the bufferevent (and what the client sent
 * after ATRN) goes to take; the session is over. */
static void smtp_sess_hand_over(struct smtp_session *s)
{
	struct bufferevent *bev = s->bev;
	struct smtp_server *srv = s->srv;
	char *client = xstrdup(s->addr), *user = xstrdup(s->auth_user), *param = s->atrn_param;

	s->atrn_param = NULL;
	s->bev = NULL;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	smtp_sess_free(s);
	srv->take(bev, client, user, param, srv->odmr_arg);
	free(client);
	free(user);
	free(param);
}

static void cmd_help(struct smtp_session *s, const char *arg);

struct smtp_cmd {
	const char *name;
	void (*fn)(struct smtp_session *s, const char *arg);
	int states; /* where the command is allowed */
};

static const struct smtp_cmd smtp_cmds[] = {
    {"EHLO", cmd_ehlo, ST_ANY},
    {"HELO", cmd_helo, ST_ANY},
    {"MAIL", cmd_mail, ST_HELO},
    {"RCPT", cmd_rcpt, ST_MAIL | ST_RCPT},
    {"DATA", cmd_data, ST_RCPT},
    {"RSET", cmd_rset, ST_ANY},
    {"NOOP", cmd_noop, ST_ANY},
    {"QUIT", cmd_quit, ST_ANY},
    {"HELP", cmd_help, ST_ANY},
    {"VRFY", cmd_vrfy, ST_ANY},
    {"STARTTLS", cmd_starttls, ST_CONNECT | ST_HELO},
    {"AUTH", cmd_auth, ST_HELO},
    {"BDAT", cmd_bdat, ST_ANY}, /* checks the state itself: the chunk is read anyway */
    {"ETRN", cmd_etrn, ST_HELO},
    {"ATRN", cmd_atrn, ST_HELO},
    {"XDMBATCH", cmd_xdmbatch, ST_HELO},
};

#define N_CMDS (sizeof(smtp_cmds) / sizeof(smtp_cmds[0]))

static void cmd_help(struct smtp_session *s, const char *arg)
{
	struct buf names = BUF_INIT;

	for (size_t i = 0; i < N_CMDS; i++)
		buf_printf(&names, " %s", smtp_cmds[i].name);
	smtp_sess_reply(s, "214 2.0.0 Commands:%s", buf_cstr(&names));
	buf_free(&names);
}

static void smtp_sess_bad_sequence(struct smtp_session *s, const struct smtp_cmd *c)
{
	const char *why = "bad sequence of commands";

	if (s->state == ST_CONNECT)
		why = "send HELO/EHLO first";
	else if (s->state == ST_BDAT)
		why = "BDAT transaction in progress (DATA and BDAT cannot be mixed)";
	else if (c->fn == cmd_mail)
		why = "nested MAIL command";
	else if (c->fn == cmd_rcpt || s->state == ST_HELO)
		why = "need MAIL command";
	else if (c->fn == cmd_data)
		why = "need RCPT command";
	smtp_sess_error(s, "503 5.5.1 Error: %s", why);
}

/* Runs one command line (CRLF removed, known free of CR, LF and NUL). */
static void smtp_sess_dispatch(struct smtp_session *s, char *line)
{
	size_t n = strlen(line);
	char *arg;

	while (n > 0 && line[n - 1] == ' ')
		line[--n] = '\0';
	arg = line + strcspn(line, " ");
	if (*arg)
		*arg++ = '\0';
	while (*arg == ' ')
		arg++;
	for (size_t i = 0; i < N_CMDS; i++) {
		if (strcasecmp(line, smtp_cmds[i].name) != 0)
			continue;
		if (smtp_cmds[i].states & s->state)
			smtp_cmds[i].fn(s, arg);
		else
			smtp_sess_bad_sequence(s, &smtp_cmds[i]);
		return;
	}
	smtp_sess_error(s, "500 5.5.2 Error: command not recognized");
}

/* ------------------------------------------------------- command reader */

/* In an overlong line: drop octets through the next LF, then answer once. */
static void smtp_sess_cmd_discard(struct smtp_session *s, struct evbuffer *in, const char *p,
				  size_t look)
{
	const char *lf = memchr(p, '\n', look);

	if (lf == NULL) {
		evbuffer_drain(in, look);
		return;
	}
	evbuffer_drain(in, (size_t)(lf - p) + 1);
	s->discarding = 0;
	s->lines_done++;
	if (s->sasl) /* an AUTH answer too long for us ends the exchange */
		auth_end(s);
	smtp_sess_error(s, "500 5.5.2 Error: line too long");
}

/* A command line p[0..len) ending in LF: CRLF and nothing else that ends lines. */
static int cmd_line_clean(const char *p, size_t len)
{
	return len >= 2 && p[len - 2] == '\r' && memchr(p, '\r', len - 2) == NULL &&
	       memchr(p, '\0', len - 2) == NULL;
}

/* Takes one command line from in; 0 when no complete line is there yet. */
static int smtp_sess_cmd_input(struct smtp_session *s, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in);
	size_t look = avail < SMTP_LINE_MAX + 1 ? avail : SMTP_LINE_MAX + 1;
	const char *p = (const char *)evbuffer_pullup(in, (ssize_t)look);
	const char *lf = memchr(p, '\n', look);
	char line[SMTP_LINE_MAX];
	size_t len;

	if (s->discarding) {
		smtp_sess_cmd_discard(s, in, p, look);
		return 1;
	}
	if (lf == NULL) {
		if (look <= SMTP_LINE_MAX)
			return 0;
		s->discarding = 1;
		return 1;
	}
	len = (size_t)(lf - p) + 1;
	if (len > SMTP_LINE_MAX) {
		s->discarding = 1;
		return 1;
	}
	if (!cmd_line_clean(p, len)) {
		evbuffer_drain(in, len);
		s->lines_done++;
		smtp_sess_error(s, "500 5.5.2 Syntax error: bare CR or LF or NUL in command");
		return 1;
	}
	memcpy(line, p, len - 2);
	line[len - 2] = '\0';
	evbuffer_drain(in, len);
	s->lines_done++;
	if (s->sasl)
		auth_feed(s, line);
	else
		smtp_sess_dispatch(s, line);
	explicit_bzero(line, len);
	return 1;
}

/* The batch is over: commands again, or the event that ended it. */
static void smtp_sess_batch_done(short what, void *arg)
{
	struct smtp_session *s = arg;

	s->batch = 0;
	s->batch_run = NULL;
	bufferevent_setcb(s->bev, smtp_sess_read_cb, NULL, smtp_sess_event_cb, s);
	if (what) {
		smtp_sess_event_cb(s->bev, what, s);
		return;
	}
	smtp_sess_command_phase(s);
	smtp_sess_read_cb(s->bev, s);
}

/* XDMBATCH DUPLEX is over: commands again (QUIT, usually), or the end. */
static void smtp_sess_duplex_end(enum batch_duplex_end how, const char *text, void *arg)
{
	struct smtp_session *s = arg;

	s->duplex_run = NULL;
	smtpc_external_end(s->duplex_tx, how == BD_DONE, text);
	s->duplex_tx = NULL;
	if (how == BD_DONE) { /* both directions are acknowledged: the call's work is done */
		s->quit_seen = 1;
		smtp_sess_reply(s, "221 2.0.0 XDMBATCH DUPLEX done, closing");
		s->closing = 1;
	}
	smtp_sess_batch_done(how == BD_DONE ? 0 : BEV_EVENT_EOF, s);
}

/* "XDMBATCH DICT=n DUPLEX=domains": the held mail goes the other way at
 * the same time (docs/batch-protocol.md 12). 0: not DUPLEX. */
static int smtp_sess_duplex_begin(struct smtp_session *s, const struct batch_server_peer *rx,
				  struct buf *reply)
{
	struct batch_duplex_params p = {.rx = *rx,
					.chunk = (size_t)s->srv->cfg->batch_checkpoint_size,
					.timeout_ms = s->srv->cfg->smtp_data_timeout * 1000,
					.end = smtp_sess_duplex_end,
					.arg = s};
	char *domains, *ckpt;
	int rc = batch_duplex_parse(s->batch_arg, &p.dict, &domains, &ckpt);

	if (rc <= 0)
		return 0;
	if (s->srv->duplex == NULL)
		buf_puts(reply, "504 5.5.4 XDMBATCH DUPLEX not offered here");
	else if ((p.tx = s->srv->duplex(s->addr, s->auth_user, domains, reply, s->srv->odmr_arg)) !=
		 NULL) {
		s->duplex_tx = p.tx;
		s->duplex_run = batch_duplex_hub(s->bev, &p, ckpt, reply);
		if (s->duplex_run == NULL) {
			smtpc_external_end(p.tx, 0, buf_cstr(reply));
			s->duplex_tx = NULL;
		}
	}
	free(domains);
	free(ckpt);
	if (s->duplex_run == NULL) {
		s->batch = 0;
		smtp_sess_reply(s, "%s", buf_cstr(reply));
		smtp_sess_command_phase(s);
		smtp_sess_read_cb(s->bev, s);
	}
	return 1;
}

/* Hands the bufferevent to batch_server.c, with what it must know. */
static void smtp_sess_batch_begin(struct smtp_session *s)
{
	struct timeval tv = {s->srv->cfg->smtp_data_timeout, 0};
	char proto[16];
	struct buf reply = BUF_INIT;
	struct batch_server_peer p = {
	    .cfg = s->srv->cfg,
	    .q = s->srv->q,
	    .addr = s->addr,
	    .helo = s->helo,
	    .auth_user = s->auth_user,
	    .proto = proto,
	    .may_relay = smtp_sess_may_relay(s),
	    .inbound = s->inbound,
	    .on_commit = s->srv->on_commit,
	    .on_commit_arg = s->srv->arg,
	    .done = smtp_sess_batch_done,
	    .done_arg = s,
	};

	snprintf(proto, sizeof(proto), "ESMTP%s%s", s->tls ? "S" : "", s->auth_user ? "A" : "");
	evtimer_del(s->ev_deadline);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	if (smtp_sess_duplex_begin(s, &p, &reply)) {
		buf_free(&reply);
		return;
	}
	s->batch_run = batch_server_start(&p, s->bev, s->batch_arg, &reply);
	if (s->batch_run == NULL) {
		s->batch = 0;
		smtp_sess_reply(s, "%s", buf_cstr(&reply));
		smtp_sess_command_phase(s);
		smtp_sess_read_cb(s->bev, s);
	}
	buf_free(&reply);
}

static void smtp_sess_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!s->closing && !s->parked && !s->starttls && !s->reversed && !s->batch &&
	       !s->auth_wait && evbuffer_get_length(in) > 0 &&
	       evbuffer_get_length(bufferevent_get_output(bev)) <= SMTP_OUT_HIGH) {
		if (s->bdat.reading)
			smtp_sess_bdat_input(s, in);
		else if (s->state == ST_DATA)
			smtp_sess_data_input(s, in);
		else if (!smtp_sess_cmd_input(s, in))
			break;
	}
	if (!s->closing && !s->parked && !s->reversed && !s->batch && !s->bdat.reading &&
	    s->state != ST_DATA)
		smtp_sess_command_deadline(s, in);
	if (s->batch && !s->closing) {
		smtp_sess_batch_begin(s);
		return;
	}
	if (s->reversed) {
		smtp_sess_hand_over(s);
		return;
	}
	if (s->eof && !s->parked && !s->closing)
		smtp_sess_half_closed(s); /* the input that waited for a commit is done */
	if (s->starttls && !s->closing) {
		smtp_sess_tls_begin(s);
		return;
	}
	if (s->closing)
		evbuffer_drain(in, evbuffer_get_length(in));
	smtp_sess_flush(s);
}

/* -------------------------------------------------------------- listener */

static void srv_refuse(struct smtp_server *srv, evutil_socket_t fd, const char *host)
{
	static const char msg[] = "421 4.7.0 Too many connections, try again later\r\n";
	const char *kv[] = {"client", host, NULL};

	if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0)
		log_debug("smtp: %s: refusal not sent: %s", host, strerror(errno));
	evutil_closesocket(fd);
	event_logkv(EV_CONNECTION_LIMIT, kv,
		    "Connection from %s refused: %d connections already open", host,
		    srv->nsessions);
}

/* A session on bev (the client's address already in s->addr). */
static void smtp_sess_start(struct smtp_server *srv, struct smtp_session *s,
			    struct bufferevent *bev)
{
	const struct config *cfg = s->lst ? &s->lst->cfg : srv->cfg;
	const char *kv[] = {"client", s->addr, NULL};

	s->srv = srv;
	s->cfg = s->lst ? &s->lst->cfg : srv->cfg;
	s->state = ST_CONNECT;
	s->bev = bev;
	s->slow_link = s->adopted || srv->odmr;
	s->data.spill = smtp_sess_spill;
	s->data.spill_arg = s;
	s->ev_deadline = evtimer_new(srv->base, smtp_sess_deadline_cb, s);
	s->ev_lifetime = evtimer_new(srv->base, smtp_sess_lifetime_cb, s);
	bufferevent_setcb(s->bev, smtp_sess_read_cb, NULL, smtp_sess_event_cb, s);
	smtp_sess_command_phase(s);
	if (cfg->smtp_max_session_time > 0 && !s->slow_link)
		smtp_sess_arm(s->ev_lifetime, cfg->smtp_max_session_time);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	event_logkv(EV_CONNECTION_ACCEPTED, kv, "SMTP connection from %s%s", s->addr,
		    s->in_mynetworks ? " (mynetworks)" : "");
	smtp_sess_reply(s, "220 %s ESMTP dialmail", cfg->hostname);
}

/* The session's bufferevent: plain, or already TLS on a submissions port
 * (the greeting waits in it until the handshake is done). */
static struct bufferevent *smtp_sess_bev(struct smtp_server *srv, struct smtp_session *s,
					 evutil_socket_t fd)
{
	SSL *ssl;
	struct bufferevent *bev;

	if (!listener_implicit_tls(s->lst))
		return bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	ssl = srv->tls_ctx ? SSL_new(srv->tls_ctx) : NULL;
	bev = ssl ? bufferevent_openssl_socket_new(srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						   BEV_OPT_CLOSE_ON_FREE)
		  : NULL;
	if (bev == NULL) {
		log_warnx("smtp: %s: cannot start TLS on %s", s->addr, s->lst->addr);
		SSL_free(ssl);
		evutil_closesocket(fd);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	s->tls = 1;
	return bev;
}

static void smtp_sess_new(struct listener *l, evutil_socket_t fd, struct sockaddr *sa)
{
	struct smtp_server *srv = l->srv;
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	const struct config *cfg = &l->cfg;
	struct bufferevent *bev;

	s->lst = l;
	s->cfg = cfg;
	sockaddr_host(sa, s->addr, sizeof(s->addr));
	s->in_mynetworks = cidr_match_any(cfg->mynetworks, cfg->n_mynetworks, sa);
	s->inbound = cfg->n_provider_networks
			 ? cidr_match_any(cfg->provider_networks, cfg->n_provider_networks, sa)
			 : !s->in_mynetworks;
	s->batch_peer = cidr_match_any(cfg->batch_networks, cfg->n_batch_networks, sa);
	if (srv_client_over(srv, s, fd)) {
		free(s);
		return;
	}
	bev = smtp_sess_bev(srv, s, fd);
	if (bev == NULL) {
		if (s->client)
			anvil_disconnect(s->client, clock_now());
		free(s);
		return;
	}
	smtp_sess_start(srv, s, bev);
}

struct smtp_adopted *smtp_server_adopt(struct smtp_server *srv, struct bufferevent *bev,
				       const char *peer, unsigned flags,
				       void (*on_close)(int quit, void *arg), void *arg)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	snprintf(s->addr, sizeof(s->addr), "%s", peer);
	s->on_close = on_close;
	s->close_arg = arg;
	s->adopted = 1;
	s->inbound = 1; /* the far end of ATRN or TURN: the provider */
	smtp_sess_start(srv, s, bev);
	s->tls = (flags & SMTP_ADOPT_TLS) != 0;
	s->batch_peer = (flags & SMTP_ADOPT_DIALMAIL) != 0;
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		smtp_sess_read_cb(bev, s);
	return (struct smtp_adopted *)s;
}

void smtp_server_adopt_forget(struct smtp_server *srv, struct smtp_adopted *a)
{
	for (struct smtp_session *s = srv->sessions; s; s = s->next)
		if (s == (struct smtp_session *)a)
			s->on_close = NULL;
}

static void srv_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
			  int salen, void *arg)
{
	struct listener *l = arg;
	struct smtp_server *srv = l->srv;
	char host[INET6_ADDRSTRLEN];

	if (srv->nsessions >= srv->cfg->max_connections) {
		sockaddr_host(sa, host, sizeof(host));
		srv_refuse(srv, fd, host);
		return;
	}
	smtp_sess_new(l, fd, sa);
}

/* Out of descriptors, waiting clients would hear nothing: the spare
 * descriptor is given up for a moment to accept one. If the spare can be
 * had again, descriptors are free and the client is served as any other;
 * else it is told 421 and closed, and the spare is back. */
static void srv_accept_spare(struct smtp_server *srv)
{
	static const char msg[] = "421 4.3.2 Too many connections, try again later\r\n";
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = -1;
	size_t i = 0;

	if (srv->spare_fd >= 0) {
		close(srv->spare_fd);
		for (; i < srv->nlst && fd < 0; i++)
			fd = accept4(evconnlistener_get_fd(srv->lst[i]->lev),
				     (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (srv->spare_fd >= 0) {
		srv_accept_cb(NULL, fd, (struct sockaddr *)&ss, (int)len, srv->lst[i - 1]);
		return;
	}
	if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) > 0)
		srv->spare_refused++;
	close(fd);
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void srv_listeners_enable(struct smtp_server *srv, int on)
{
	for (size_t i = 0; i < srv->nlst; i++)
		if (on)
			evconnlistener_enable(srv->lst[i]->lev);
		else
			evconnlistener_disable(srv->lst[i]->lev);
}

static void srv_backoff_arm(struct smtp_server *srv)
{
	struct timeval tv = {srv->backoff_ms / 1000, (srv->backoff_ms % 1000) * 1000};

	evtimer_add(srv->ev_resume, &tv);
}

/* End of a pause: one waiting client hears 421 and the listeners accept
 * again, for a back-off; a back-off without failure ends the episode. */
static void srv_accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;

	if (!srv->paused) {
		log_info("smtp: accepting again; %d waiting clients were told 421 meanwhile",
			 srv->spare_refused);
		srv->backoff_ms = 0;
		srv->spare_refused = 0;
		return;
	}
	srv_accept_spare(srv);
	srv->paused = 0;
	srv_listeners_enable(srv, 1);
	srv_backoff_arm(srv);
}

/* accept failed (EMFILE, ENFILE, ENOBUFS...): libevent would call again at
 * once while clients wait, so the listeners pause for a back-off that
 * doubles from 100 ms to 1 s while accept keeps failing; one event for the
 * whole episode. */
static void srv_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct smtp_server *srv = ((struct listener *)arg)->srv;
	int err = EVUTIL_SOCKET_ERROR();
	const char *kv[] = {"error", strerror(err), NULL};

	if (srv->paused)
		return;
	if (srv->backoff_ms == 0) {
		srv->backoff_ms = 100;
		event_logkv(EV_ACCEPT_PAUSED, kv,
			    "SMTP accept failed (%s) with %d sessions open; accepting paused, "
			    "retried after 100 ms to 1 s",
			    kv[1], srv->nsessions);
	} else if (srv->backoff_ms < 1000) {
		srv->backoff_ms = srv->backoff_ms * 2 > 1000 ? 1000 : srv->backoff_ms * 2;
	}
	srv->paused = 1;
	srv_listeners_enable(srv, 0);
	srv_backoff_arm(srv);
}

/* A listen address that cannot be opened: event 1003, and a line on
 * standard error (the administrator starting the daemon, or the journal,
 * sees "address already in use" at once). Returns -1. */
static int srv_listen_failed(const char *addr, const char *why)
{
	const char *kv[] = {"address", addr, "error", why, NULL};

	event_logkv(EV_LISTEN_FAILED, kv, "Cannot listen on %s: %s", addr, why);
	log_warnx("smtp: cannot listen on %s: %s", addr, why);
	return -1;
}

/* Opens l and adds it to srv (which then owns it); -1 (event 1003) and l
 * freed on failure. */
static int srv_listen(struct smtp_server *srv, struct listener *l)
{
	struct buf why = BUF_INIT;
	int fd = listener_socket(l->addr, &why), rc = 0;

	if (fd < 0) {
		rc = srv_listen_failed(l->addr, buf_cstr(&why));
		goto done;
	}
	l->srv = srv;
	l->lev = evconnlistener_new(srv->base, srv_accept_cb, l, LEV_OPT_CLOSE_ON_FREE, 0, fd);
	if (l->lev == NULL) {
		close(fd);
		rc = srv_listen_failed(l->addr, "libevent listener setup failed");
		goto done;
	}
	evconnlistener_set_error_cb(l->lev, srv_accept_error_cb);
	if (srv->ev_resume == NULL) {
		srv->ev_resume = evtimer_new(srv->base, srv_accept_resume_cb, srv);
		srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	srv->lst = xrealloc(srv->lst, (srv->nlst + 1) * sizeof(*srv->lst));
	srv->lst[srv->nlst++] = l;
	event_logkv(
	    EV_LISTENING,
	    (const char *[]){"address", l->addr, "service", listen_service_name(l->service), NULL},
	    "SMTP server listening on %s (%s)", l->addr, listen_service_name(l->service));
	l = NULL;
done:
	listener_free(l);
	buf_free(&why);
	return rc;
}

/* A local user's sendmail (smtp_server_listen_local): the peer's uid,
 * checked by the kernel, is the session's authenticated identity. */
static void srv_local_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
				int salen, void *arg)
{
	struct smtp_server *srv = arg;
	struct smtp_session *s;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct passwd *pw;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    srv->nsessions >= srv->cfg->max_connections) {
		srv_refuse(srv, fd, "local");
		return;
	}
	s = xcalloc(1, sizeof(*s));
	pw = getpwuid(cr.uid);
	snprintf(s->addr, sizeof(s->addr), "local uid %u", (unsigned)cr.uid);
	s->auth_user = pw ? xstrdup(pw->pw_name) : xasprintf("uid%u", (unsigned)cr.uid);
	s->in_mynetworks = 1; /* a local user may send anywhere, as with sendmail */
	s->local_user = 1;
	smtp_sess_start(srv, s, bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE));
}

int smtp_server_listen_local(struct smtp_server *srv, const char *path)
{
	struct buf why = BUF_INIT;
	int fd = listener_unix_socket(path, &why), rc = 0;

	if (fd < 0)
		rc = srv_listen_failed(path, buf_cstr(&why));
	else if ((srv->local = evconnlistener_new(srv->base, srv_local_accept_cb, srv,
						  LEV_OPT_CLOSE_ON_FREE, 0, fd)) == NULL) {
		close(fd);
		rc = srv_listen_failed(path, "libevent listener setup failed");
	} else
		event_logkv(EV_LISTENING,
			    (const char *[]){"address", path, "service", "local", NULL},
			    "SMTP server listening on %s (local submission)", path);
	buf_free(&why);
	return rc;
}

int smtp_server_listen(struct smtp_server *srv, const char *addr)
{
	return srv_listen(srv, listener_new(srv->cfg, addr));
}

int smtp_server_listen_item(struct smtp_server *srv, size_t i)
{
	return srv_listen(srv, listener_new_item(srv->cfg, i));
}

/* The committer thread and its completion event; without them every
 * batch is committed in the loop. */
static void srv_committer_start(struct smtp_server *srv)
{
	srv->qc = queue_committer_new(srv->q);
	if (srv->qc == NULL) {
		log_warn("smtp: no committer thread; queue syncs run in the event loop");
		return;
	}
	srv->ev_done = event_new(srv->base, queue_committer_fd(srv->qc), EV_READ | EV_PERSIST,
				 srv_batch_done_cb, srv);
	if (srv->ev_done == NULL || event_add(srv->ev_done, NULL) < 0) {
		log_warnx("smtp: cannot watch the committer; queue syncs run in the event loop");
		if (srv->ev_done)
			event_free(srv->ev_done);
		srv->ev_done = NULL;
		queue_committer_free(srv->qc);
		srv->qc = NULL;
	}
}

/* Shutdown: waits for the batch in flight; its sessions get their replies
 * (written now, as far as the sockets take them) and its messages their
 * events. The staging batch was never acknowledged: it is dropped. */
static void srv_committer_stop(struct smtp_server *srv)
{
	struct srv_batch *sb = srv->inflight;

	if (srv->qc == NULL)
		return;
	if (sb && queue_committer_done(srv->qc, 1) != NULL) {
		srv->inflight = NULL;
		for (size_t i = 0; i < sb->n; i++) {
			struct smtp_session *s = sb->parked[i];

			smtp_sess_commit_done(s, &sb->res[i]);
			s->parked = 0;
			if (!s->gone && !s->tls) /* TLS output went to SSL_write already */
				evbuffer_write(bufferevent_get_output(s->bev),
					       bufferevent_getfd(s->bev));
		}
		sb->n = 0;
	}
	if (srv->ev_done)
		event_free(srv->ev_done);
	srv->ev_done = NULL;
	queue_committer_free(srv->qc);
	srv->qc = NULL;
}

/* The STARTTLS context; config_load already checked the files, so a
 * failure here (files changed since) only means no STARTTLS. */
static void srv_tls_start(struct smtp_server *srv)
{
	const struct config *cfg = srv->cfg;
	struct buf err = BUF_INIT;

	if (cfg->tls_cert_file == NULL || *cfg->tls_cert_file == '\0')
		return;
	srv->tls_ctx = tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file, &err);
	if (srv->tls_ctx == NULL)
		log_warnx("smtp: STARTTLS not offered: %s", buf_cstr(&err));
	buf_free(&err);
}

/* SSL_new took a reference on the old context, so freeing ours here
 * leaves the sessions in progress their own. */
int smtp_server_reload_tls(struct smtp_server *srv, struct buf *err)
{
	const struct config *cfg = srv->cfg;
	SSL_CTX *ctx;

	if (cfg->tls_cert_file == NULL || *cfg->tls_cert_file == '\0')
		return 0;
	ctx = tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file, err);
	if (ctx == NULL)
		return -1;
	SSL_CTX_free(srv->tls_ctx);
	srv->tls_ctx = ctx;
	return 1;
}

struct smtp_server *smtp_server_new(struct event_base *base, const struct config *cfg,
				    struct queue *q,
				    void (*on_commit)(const char *qid, int inbound, void *arg),
				    void *arg)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->cfg = cfg;
	srv->q = q;
	srv->anvil = anvil_new((size_t)cfg->max_connections + 512);
	srv->on_commit = on_commit;
	srv->arg = arg;
	for (int i = 0; i < 2; i++)
		srv->bat[i].b = queue_batch_new(q);
	srv->staging = &srv->bat[0];
	srv->ev_commit = evtimer_new(base, srv_batch_cb, srv);
	srv_committer_start(srv);
	srv_tls_start(srv);
	return srv;
}

void smtp_server_set_etrn(struct smtp_server *srv,
			  void (*etrn)(const char *client, const char *user, const char *param,
				       struct buf *reply, void *arg),
			  void *arg)
{
	srv->etrn = etrn;
	srv->etrn_arg = arg;
}

void smtp_server_batch_peer(const struct smtp_server *srv, struct batch_server_peer *p)
{
	p->cfg = srv->cfg;
	p->q = srv->q;
	p->proto = "ESMTP";
	p->may_relay = 0; /* the far end of a dial-up line, as an adopted session */
	p->inbound = 1;
	p->on_commit = srv->on_commit;
	p->on_commit_arg = srv->arg;
}

void smtp_server_set_duplex(struct smtp_server *srv,
			    struct smtpc *(*duplex)(const char *client, const char *user,
						    const char *domains, struct buf *reply,
						    void *arg))
{
	srv->duplex = duplex;
}

void smtp_server_set_odmr(struct smtp_server *srv,
			  int (*atrn)(const char *client, const char *user, const char *param,
				      struct buf *reply, void *arg),
			  void (*take)(struct bufferevent *bev, const char *client,
				       const char *user, const char *param, void *arg),
			  void *arg)
{
	srv->odmr = 1;
	srv->atrn = atrn;
	srv->take = take;
	srv->odmr_arg = arg;
}

int smtp_server_sessions(const struct smtp_server *srv)
{
	return srv ? srv->nsessions : 0;
}

int smtp_server_inbound_sessions(const struct smtp_server *srv)
{
	int n = 0;

	for (const struct smtp_session *s = srv ? srv->sessions : NULL; s; s = s->next)
		n += s->inbound;
	return n;
}

void smtp_server_free(struct smtp_server *srv)
{
	if (srv == NULL)
		return;
	for (size_t i = 0; i < srv->nlst; i++)
		evconnlistener_free(srv->lst[i]->lev);
	if (srv->local)
		evconnlistener_free(srv->local);
	if (srv->ev_resume) {
		event_free(srv->ev_resume);
		if (srv->spare_fd >= 0)
			close(srv->spare_fd);
	}
	srv_committer_stop(srv);
	/* Staged messages were never acknowledged: they are dropped from tmp/. */
	for (int i = 0; i < 2; i++) {
		queue_batch_free(srv->bat[i].b);
		free(srv->bat[i].parked);
		free(srv->bat[i].res);
	}
	while (srv->sessions)
		smtp_sess_free(srv->sessions);
	/* after the sessions and the last commit: they read their listener's cfg */
	for (size_t i = 0; i < srv->nlst; i++)
		listener_free(srv->lst[i]);
	free(srv->lst);
	if (srv->ev_commit)
		event_free(srv->ev_commit);
	SSL_CTX_free(srv->tls_ctx);
	anvil_free(srv->anvil);
	free(srv);
}
