/* What the three ATRN ends share: the branch's client dialogue (odmr.c over
 * TCP, direct.c over the serial line) and the held-mail batches both hubs
 * (odmr.c's hub, direct.c's outbound turn) hand to the SMTP client engine.
 * Kept in one place so the AUTH answers, the reply parsing and the rule
 * "a recipient changes state only on the peer's final reply" cannot drift. */
#ifndef DAEMON_ODMR_COMMON_H
#define DAEMON_ODMR_COMMON_H
#include <stdarg.h>
#include <stddef.h>

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "daemon/routes.h"
#include "daemon/session.h"
#include "lib/buf.h"
#include "lib/strlist.h"
#include "queue/queue.h"
#include "smtp/smtp_client.h"

struct delivery;

/* 1 if s (n bytes) is a domain as ATRN, ETRN and the settings name it:
 * letters, digits, '-', '.', not starting or ending with '.'. */
int odmr_common_domain_ok(const char *s, size_t n);

/* --- the client's dialogue ---------------------------------------------- */

/* The host of "host", "host:port", "[v6]" or "[v6]:port" (caller frees);
 * *port set when one is given. */
char *odmr_common_host(const char *hostport, int *port);
/* Writes one command line (fmt + CRLF) to bev. */
void odmr_common_vsend(struct bufferevent *bev, const char *fmt, va_list ap);
/* The base64 CRAM-MD5 answer (RFC 2195) to challenge64; NULL if the
 * challenge is not base64. Caller frees. */
char *odmr_common_cram(const struct auth_cred *cred, const char *challenge64);
/* The base64 AUTH PLAIN argument ("\0user\0password"). Caller frees. */
char *odmr_common_plain(const struct auth_cred *cred);

struct odmr_common_caps {
	int starttls, cram, plain, atrn;
};
/* The EHLO offers of a reply's text (lines joined by '\n'). */
void odmr_common_caps(const char *reply, struct odmr_common_caps *caps);
/* "ATRN a,b,c" for the domains (caller frees). */
char *odmr_common_atrn_cmd(const struct strlist *domains);
/* Adds one reply line (without CRLF) to reply (text after the code, lines
 * joined by '\n', reply kept under max bytes). Returns -1 for a line that
 * is no reply, 0 when more lines follow, else the final reply's code. */
int odmr_common_reply_line(struct buf *reply, size_t max, const char *line, size_t n);

/* --- TLS for the client's dialogue (atrn_tls, atrn_ca, atrn_fingerprint) --- */

/* atrn_tls: opportunistic (0, the default) uses STARTTLS when the hub offers
 * it; required fails without it; none never asks. */
enum odmr_tls { ODMR_TLS_OPPORTUNISTIC = 0, ODMR_TLS_NONE, ODMR_TLS_REQUIRED };

/* The policy named value ("none", "opportunistic", "required"), or -1. */
int odmr_common_tls_policy(const char *value);
const char *odmr_common_tls_name(int policy);
/* 1 if the hub's chain must verify: atrn_ca is set, or atrn_tls = required
 * without a pin (then against the system's CAs). */
int odmr_common_tls_verifies(const struct session_config *sc);
/* A client TLS session for the hub named host (SNI unless it is an
 * address; the certificate must carry the name when the chain is verified;
 * host NULL: the chain only). NULL with why filled. */
SSL *odmr_common_tls_ssl(const struct session_config *sc, const char *host, struct buf *why);
/* After the handshake: the chain and name (odmr_common_tls_verifies) and
 * atrn_fingerprint. 0 with "TLSv1.3 CIPHER, certificate verified" (or
 * "matches the pin", "not verified") in text, or -1 with the cause. */
int odmr_common_tls_check(const struct session_config *sc, SSL *ssl, struct buf *text);
/* Why a handshake on bev failed, from OpenSSL's errors. */
void odmr_common_tls_error(struct bufferevent *bev, struct buf *why);

/* --- held-mail batches for the SMTP client engine -------------------------- */

struct odmr_common_msg {
	struct q_env env;
	struct buf content;
	size_t *idx; /* the recipients carried */
	size_t nidx;
	int stored;
};

struct odmr_common_batch {
	struct odmr_common_msg *m;
	size_t nm;
	struct smtpc_msg *jobs; /* after odmr_common_batch_jobs */
};

/* Loads message id and adds it to b if want(rcpt, arg) picks any recipient;
 * 1 if it did. with_content 0: envelope only, nothing added, b may be NULL
 * (counting). */
int odmr_common_batch_load(struct odmr_common_batch *b, struct queue *q, const char *id,
			   int with_content, int (*want)(const struct q_rcpt *r, void *arg),
			   void *arg);
/* Builds b->jobs for smtpc_new (user = the odmr_common_msg). */
void odmr_common_batch_jobs(struct odmr_common_batch *b);
void odmr_common_batch_free(struct odmr_common_batch *b);

/* Who got the mail, for events, DSNs and the log. */
struct odmr_common_peer {
	const char *key, *value; /* the event's extra field ("entry", name) */
	const char *label;	 /* "(SMTP over the line of x)" */
	const char *remote_mta;	 /* for DSNs */
	const char *tag;	 /* log prefix: "odmr" */
	int log_deferred;	 /* log event for 4xx recipients too */
	unsigned ok, held, failed;
};
/* Stores one message's results on its reloaded state (only pending
 * recipients change); a 5xx gets a DSN through outbound delivery (d may be
 * NULL). */
void odmr_common_store(struct odmr_common_peer *p, struct queue *q, struct delivery *d,
		       struct odmr_common_msg *m, const struct smtpc_msg *sm);

#endif
