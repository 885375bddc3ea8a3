/* The branch's ATRN dialogue (RFC 2645), shared by the ATRN job over TCP
 * (dialup/atrn.c) and SMTP on the modem line (dialup/direct.c), so the AUTH
 * answers, the reply parsing and the TLS checks cannot drift. */
#ifndef DIALUP_ODMR_CLIENT_H
#define DIALUP_ODMR_CLIENT_H
#include <stdarg.h>
#include <stddef.h>

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "dialup/session.h"
#include "lib/buf.h"
#include "lib/strlist.h"
#include "mail/routes.h"

#define ODMR_PORT 366 /* RFC 2645 */

/* --- the client's dialogue ---------------------------------------------- */

/* The host of "host", "host:port", "[v6]" or "[v6]:port" (caller frees);
 * *port set when one is given. */
char *odmr_client_host(const char *hostport, int *port);
/* Writes one command line (fmt + CRLF) to bev. */
void odmr_client_vsend(struct bufferevent *bev, const char *fmt, va_list ap);
/* The base64 CRAM-MD5 answer (RFC 2195) to challenge64; NULL if the
 * challenge is not base64. Caller frees. */
char *odmr_client_cram(const struct auth_cred *cred, const char *challenge64);
/* The base64 AUTH PLAIN argument ("\0user\0password"). Caller frees. */
char *odmr_client_plain(const struct auth_cred *cred);

struct odmr_client_caps {
	int starttls, cram, plain, atrn;
	int xdmbatch;	  /* a dialmail peer (docs/batch-protocol.md) */
	int duplex, dict; /* XDMBATCH 1 with DUPLEX; its DICT= */
};
/* The EHLO offers of a reply's text (lines joined by '\n' or "; "). */
void odmr_client_caps(const char *reply, struct odmr_client_caps *caps);
/* "ATRN a,b,c" for the domains (caller frees). */
char *odmr_client_atrn_cmd(const struct strlist *domains);
/* Adds one reply line (without CRLF) to reply (text after the code, lines
 * joined by '\n', reply kept under max bytes). Returns -1 for a line that
 * is no reply, 0 when more lines follow, else the final reply's code. */
int odmr_client_reply_line(struct buf *reply, size_t max, const char *line, size_t n);

/* --- TLS for the client's dialogue (atrn_tls, atrn_ca, atrn_fingerprint) --- */

/* atrn_tls: opportunistic (0, the default) uses STARTTLS when the hub offers
 * it; required fails without it; none never asks. */
enum odmr_tls { ODMR_TLS_OPPORTUNISTIC = 0, ODMR_TLS_NONE, ODMR_TLS_REQUIRED };

/* The policy named value ("none", "opportunistic", "required"), or -1. */
int odmr_client_tls_policy(const char *value);
const char *odmr_client_tls_name(int policy);
/* 1 if the hub's chain must verify: atrn_ca is set, or atrn_tls = required
 * without a pin (then against the system's CAs). */
int odmr_client_tls_verifies(const struct session_config *sc);
/* A client TLS session for the hub named host (SNI unless it is an
 * address; the certificate must carry the name when the chain is verified;
 * host NULL: the chain only). NULL with why filled. */
SSL *odmr_client_tls_ssl(const struct session_config *sc, const char *host, struct buf *why);
/* After the handshake: the chain and name (odmr_client_tls_verifies) and
 * atrn_fingerprint. 0 with "TLSv1.3 CIPHER, certificate verified" (or
 * "matches the pin", "not verified") in text, or -1 with the cause. */
int odmr_client_tls_check(const struct session_config *sc, SSL *ssl, struct buf *text);
/* Why a handshake on bev failed, from OpenSSL's errors. */
void odmr_client_tls_error(struct bufferevent *bev, struct buf *why);

#endif
