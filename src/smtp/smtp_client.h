/* SMTP client protocol engine on libevent: one connection, many messages,
 * as few round trips as RFC 2920 (PIPELINING) and RFC 3030 (CHUNKING) allow;
 * STARTTLS (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954), SIZE, 8BITMIME; and
 * LMTP (RFC 2033: LHLO, one reply per accepted recipient after the data).
 * Invariant: a recipient is Q_OK only after the server's 2xx to the end of
 * its message's data; everything not confirmed is Q_TEMPFAIL (duplicates
 * are possible, loss never). See docs/smtp-client.md. */
#ifndef SMTP_SMTP_CLIENT_H
#define SMTP_SMTP_CLIENT_H
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/buf.h"
#include "queue/queue.h"

enum smtpc_tls_policy { SMTPC_TLS_NONE, SMTPC_TLS_OPPORTUNISTIC, SMTPC_TLS_REQUIRED };

/* Per-phase timeouts in milliseconds; 0 = the default (RFC 5321 4.5.3.2). */
struct smtpc_timeouts {
	int connect;	/* TCP connect: 60 s */
	int banner;	/* 220 greeting: 5 min */
	int helo;	/* EHLO, HELO, STARTTLS, AUTH, RSET replies: 5 min */
	int tls;	/* TLS handshake: 2 min */
	int mail;	/* MAIL reply: 5 min */
	int rcpt;	/* RCPT reply: 5 min */
	int data_init;	/* 354 to DATA: 2 min */
	int data_block; /* no progress writing data: 3 min */
	int data_end;	/* reply to "." or BDAT LAST: 10 min */
	int quit;	/* 221 to QUIT: 30 s */
};

/* Options; smtpc_new copies them (strings included). */
struct smtpc_options {
	const char *helo_name;	 /* EHLO/HELO argument (required) */
	const char *server_name; /* SNI and certificate host check; NULL: neither */
	enum smtpc_tls_policy tls;
	int tls_verify;		 /* 1: the chain (ca_file, else system store) and
				    server_name must verify, else TLS failure */
	const char *ca_file;	 /* PEM CA bundle, or NULL */
	const char *fingerprint; /* SHA-256 of the server certificate (DER),
				    hex, ':' optional; NULL: no pin */
	const char *tls_session; /* file of the TLS session kept for this peer
				    (tls_resume_ssl); NULL: no resumption */
	const char *auth_user;	 /* NULL: no AUTH */
	const char *auth_pass;
	int auth_plaintext_ok; /* allow AUTH without TLS */
	int no_pipelining;     /* ignore PIPELINING even when offered */
	int no_chunking;       /* ignore CHUNKING even when offered */
	int early_ehlo;	       /* EHLO at once, not after the greeting (RFC 5321 3.1
				  says wait): only towards a peer known to take it,
				  a dialmail server; saves a one-way delay */
	size_t max_messages;   /* per connection; 0 = no limit */
	int batch;	       /* use XDMBATCH when offered (docs/batch-protocol.md) */
	size_t batch_chunk;    /* its checkpoint size; 0: 16 KiB */
	int lmtp;	       /* speak LMTP (RFC 2033): LHLO, no HELO fallback,
				  PIPELINING implied, one final reply per
				  accepted recipient after the data */
	struct smtpc_timeouts t;
};

struct smtpc_rcpt_result {
	int status;  /* Q_OK, Q_TEMPFAIL or Q_PERMFAIL */
	char *reply; /* the server's reply (lines joined by '\n'), or our reason */
};

/* One message job. Input fields are the caller's and must stay valid and
 * unchanged until smtpc_free; output fields are filled by the client and
 * stay valid until smtpc_free. */
struct smtpc_msg {
	/* input */
	const struct q_env *env;
	const struct buf *content; /* wire form: CRLF line ends, dots unstuffed */
	const size_t *rcpt_idx;	   /* indexes into env->rcpt to send; NULL: all */
	size_t nrcpt_idx;	   /* entries in rcpt_idx (ignored when NULL) */
	void *user;		   /* for the caller */
	/* output (smtpc_new sets every status to Q_TEMPFAIL, "not attempted") */
	int status;		       /* Q_OK: every recipient Q_OK; Q_PERMFAIL: every
					  recipient Q_PERMFAIL; else Q_TEMPFAIL */
	char *reply;		       /* the message's deciding reply or reason */
	int attempted;		       /* MAIL was sent */
	int data_sent;		       /* content went on the wire: a duplicate is possible */
	int eightbit_unannounced;      /* 8-bit content sent to a server without 8BITMIME */
	int dsn_passed;		       /* the server offered DSN: RET, ENVID, NOTIFY and
					  ORCPT of the envelope went with MAIL and RCPT */
	struct smtpc_rcpt_result *res; /* one per recipient sent, in rcpt_idx order */
	size_t nres;
};

/* Why a connection ended. */
enum smtpc_cause {
	SMTPC_OK,		/* ran to QUIT (per-message results tell the rest) */
	SMTPC_CONNECT_FAILED,	/* refused, unreachable, ... (text has strerror) */
	SMTPC_CONNECT_TIMEOUT,	/* no TCP connection in time */
	SMTPC_BANNER_TIMEOUT,	/* connected, no greeting in time */
	SMTPC_GREETING_REFUSED, /* greeting not 2xx (e.g. 554, 421) */
	SMTPC_HELO_REFUSED,	/* EHLO and HELO refused (LMTP: LHLO refused) */
	SMTPC_TLS_NOT_OFFERED,	/* policy required, no STARTTLS (nothing sent in clear) */
	SMTPC_TLS_FAILED,	/* STARTTLS refused, handshake, verification or pin failed */
	SMTPC_AUTH_UNAVAILABLE, /* credentials given, no usable mechanism or no TLS */
	SMTPC_AUTH_FAILED,	/* AUTH refused (text has the reply) */
	SMTPC_SERVER_SHUTDOWN,	/* 421 in the middle of the session */
	SMTPC_TIMEOUT,		/* a command or data timeout (text names the phase) */
	SMTPC_CONNECTION_LOST,	/* EOF or error before the session was done */
	SMTPC_PROTOCOL_ERROR,	/* malformed reply, data after STARTTLS reply, ... */
};

struct smtpc_session_result {
	int status; /* Q_OK when cause == SMTPC_OK, else Q_TEMPFAIL */
	enum smtpc_cause cause;
	const char *text;	/* human-readable cause ("" when SMTPC_OK) */
	const char *remote_mta; /* first word of the greeting, or "" */
	int tls;		/* the session ran under TLS */
	const char *tls_info;	/* e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" */
	int tls_resumed;	/* the handshake resumed a kept session */
	int authenticated;
	int peer_dialmail;     /* the greeting was dialmail's ("220 NAME ESMTP dialmail") */
	int hello_done;	       /* EHLO or HELO was answered: chunking below is known */
	int chunking;	       /* ... and the server offers CHUNKING */
	size_t waits;	       /* times the client had to wait for a reply before it could
				  send more (the banner counts): the round trips spent */
	size_t messages_ok;    /* messages with every recipient Q_OK */
	long long greeting_us; /* connected to greeting: about one round trip; 0 unknown */
};

struct smtpc;
/* Called exactly once per started session, never from inside smtpc_start_*
 * or smtpc_connect; the connection is closed by then. c may be freed in it. */
typedef void (*smtpc_done_cb)(struct smtpc *c, const struct smtpc_session_result *r, void *arg);
/* Optional: called as each message's result becomes final (not for
 * messages that were never attempted). */
typedef void (*smtpc_msg_cb)(struct smtpc *c, struct smtpc_msg *m, void *arg);

struct smtpc *smtpc_new(struct event_base *base, const struct smtpc_options *opt,
			struct smtpc_msg *msgs, size_t nmsgs, smtpc_done_cb done, void *arg);
void smtpc_set_msg_cb(struct smtpc *c, smtpc_msg_cb cb);
/* Starts the session: connect to a numeric "192.0.2.1:25" / "[2001:db8::1]:25",
 * or to a unix socket "unix:/path" (as smtpc_connect_unix). -1 (done never
 * called) if hostport is not a numeric address with port nor "unix:PATH". */
int smtpc_connect(struct smtpc *c, const char *hostport);
/* Starts the session on the unix stream socket path (e.g. Dovecot's LMTP
 * socket). -1 (done never called) if path is empty or too long. */
int smtpc_connect_unix(struct smtpc *c, const char *path);
/* Starts on an already connected socket (the client closes it). */
int smtpc_start_fd(struct smtpc *c, evutil_socket_t fd);
/* Starts on a connected bufferevent (the client frees it; its callbacks are replaced). */
int smtpc_start_bev(struct smtpc *c, struct bufferevent *bev);
/* Frees the client; before done was called, the session is dropped silently. */
void smtpc_free(struct smtpc *c);
const char *smtpc_cause_name(enum smtpc_cause cause); /* "banner-timeout", ... */

/* ---- internals exposed for unit tests ---- */

/* A reply being assembled from lines ("250-a", "250 b"). */
struct smtpc_reply {
	int code;
	struct buf text; /* lines without CRLF, joined by '\n' */
};
/* Feeds one line (without CRLF): 1 = reply complete, 0 = more lines
 * follow, -1 = malformed. After 1 or -1 the next line starts a new reply. */
int smtpc_reply_line(struct smtpc_reply *r, const char *line, size_t len);

struct smtpc_caps {
	int pipelining, chunking, starttls, eightbitmime, auth_plain, auth_login, dsn;
	int has_size;
	uint64_t size;		     /* SIZE limit; 0 with has_size = no fixed limit */
	int xdmbatch, xdmbatch_dict; /* XDMBATCH version and dictionary, 0: not offered */
};
/* Parses the EHLO reply text (as in struct smtpc_reply). */
void smtpc_caps_parse(struct smtpc_caps *caps, const char *text);
/* Appends data dot-stuffed, with a final CRLF if missing, then ".\r\n". */
void smtpc_dot_stuff(struct buf *out, const char *data, size_t len);
int smtpc_is_8bit(const char *data, size_t len);

enum smtpc_cmd {
	SC_BANNER,
	SC_EHLO,
	SC_HELO,
	SC_STARTTLS,
	SC_AUTH,
	SC_AUTH_USER,
	SC_AUTH_PASS,
	SC_RSET,
	SC_MAIL,
	SC_RCPT,
	SC_DATA,
	SC_DOT,
	SC_BDAT,
	SC_QUIT
};
struct smtpc_step {
	enum smtpc_cmd cmd;
	int msg;  /* message index, -1 for none */
	int rcpt; /* result index in the message, -1 for none */
};
/* Plans the transaction phase for the server's caps: steps (caller frees)
 * and count. Messages over the server's SIZE or over max_messages get their
 * results here and no steps. */
size_t smtpc_plan(struct smtpc *c, const struct smtpc_caps *caps, struct smtpc_step **steps);
/* 1 if nothing may be sent after cmd until its reply came. */
int smtpc_cmd_barrier(enum smtpc_cmd cmd, int pipelining);

/* The duplex exchange (batch_duplex.c) sends c's messages in a batch of its
 * own, outside any session of c (smtpc_new, never started): c keeps the
 * results, as it would for its own session (msg_cb included). */
struct batch_client_ops;
extern const struct batch_client_ops smtpc_result_ops; /* arg: c */
struct smtpc_msg *smtpc_jobs(struct smtpc *c, size_t *n);
/* The exchange is over: what has no result is deferred (why), and done is
 * called from the loop (cause SMTPC_OK if ok, else connection lost). */
void smtpc_external_end(struct smtpc *c, int ok, const char *why);

#endif
