/* The client side of inbound retrieval, written once: greeting, EHLO or HELO,
 * STARTTLS, AUTH, the method's command, QUIT; on its own connection or on the
 * caller's line. Invariant: nothing (no AUTH) before the certificate passed. */
#ifndef DIALUP_RETRIEVE_CLIENT_H
#define DIALUP_RETRIEVE_CLIENT_H
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "mail/config.h"
#include "mail/routes.h"
#include "dialup/session_config.h"

struct retrieve_client;
struct smtp_server;

enum retrieve_client_mode {
	/* ETRN, TURN: EHLO, HELO if it is refused (any 2xx will do); no TLS,
	 * no AUTH; reply lines joined by "; ", 4 KiB kept */
	RC_SMTP,
	/* ATRN (RFC 2645): EHLO must get 250, then STARTTLS as atrn_tls says
	 * and AUTH (CRAM-MD5 in clear, PLAIN under TLS); reply lines joined by
	 * '\n' (the EHLO offers are read from them), each one a 2xx-5xx code */
	RC_ODMR,
	/* ATRN on the modem line: as RC_ODMR, but the circuit is point to
	 * point, so PLAIN may go in clear when CRAM-MD5 is not offered; the
	 * greeting is a step (it is the line's link check); a failure is no
	 * step of its own (the line's end logs each); AUTH failures end without
	 * QUIT; 8 KiB of a reply kept */
	RC_LINE,
};

struct retrieve_client_opts {
	enum retrieve_client_mode mode;
	const struct config *cfg;	 /* hostname (EHLO), dns_servers */
	const struct session_config *sc; /* retrieve_timeout, atrn_tls, atrn_ca, ... */
	const char *host;		 /* connected to, and the name the certificate must
					    carry (on a line: NULL, the chain only) */
	int port;
	const char *peer;	      /* "the hub": words for a lost connection */
	const struct auth_cred *cred; /* AUTH as (not RC_SMTP); NULL: no AUTH */
	const char *malformed;	      /* the end's words for a line that is no reply;
					 NULL (RC_SMTP only): any line will do */
	/* RC_LINE, a dialmail hub known from an earlier call to offer CRAM-MD5
	 * and no STARTTLS we want: EHLO and AUTH CRAM-MD5 at once, without
	 * waiting for the greeting (docs/batch-protocol.md 12.4). */
	int early;
};

/* What ops->refused was refused. */
enum { RC_REFUSED_GREETING, RC_REFUSED_EHLO, RC_REFUSED_HELO };

/* What the method does at each turn; ready, reply and end are required,
 * the others may be NULL as their comments say. */
struct retrieve_client_ops {
	/* The method's turn (after EHLO or HELO, STARTTLS and AUTH): send the
	 * command (retrieve_client_command). */
	void (*ready)(struct retrieve_client *c, void *arg);
	/* early only, NULL: none. Called as the CRAM-MD5 answer is sent: 1 if
	 * the method sent its command behind it and took the line (it reads
	 * AUTH's reply itself), 0: ready follows AUTH's 235 as usual. */
	int (*pipelined)(struct retrieve_client *c, void *arg);
	/* The final reply to the method's command. */
	void (*reply)(struct retrieve_client *c, int code, const char *text, void *arg);
	/* The greeting, EHLO or HELO refused (stage: RC_REFUSED_*). NULL: the
	 * ATRN dialogue's "hub greeting refused: ..." or "EHLO refused: ...". */
	void (*refused)(struct retrieve_client *c, int stage, int code, const char *text,
			void *arg);
	/* Its own connection failed or closed (BEV_EVENT_* in what) before
	 * QUIT. NULL: "connection to HOST port N timed out | closed by PEER |
	 * failed". */
	void (*lost)(struct retrieve_client *c, short what, void *arg);
	/* The SMTP server session it became (retrieve_client_reverse) ended;
	 * quit: the peer sent QUIT. Required with retrieve_client_reverse. */
	void (*closed)(struct retrieve_client *c, int quit, void *arg);
	/* A step of the ATRN dialogue (event 4124); NULL: none. */
	void (*step)(void *arg, const char *what, int code, const char *text);
	/* The caller's line after 220 to STARTTLS: TLS over it, callbacks set,
	 * not yet enabled; NULL when that failed (ssl is then freed). NULL
	 * hook: its own connection. */
	struct bufferevent *(*tls_wrap)(SSL *ssl, void *arg);
	/* The end. Its own connection: from a timer, c already freed, after a
	 * queued QUIT left (at most 2 s). A line: at once; the caller ends. */
	void (*end)(int ok, const char *text, void *arg);
};

/* Resolves opts->host (c-ares, dns_servers), connects within
 * retrieve_timeout and reads the greeting. NULL with why filled if it
 * cannot start (end is then not called). */
struct retrieve_client *retrieve_client_connect(struct event_base *base,
						const struct retrieve_client_opts *opts,
						const struct retrieve_client_ops *ops, void *arg,
						struct buf *why);
/* The dialogue on the caller's bev, from the greeting on: the caller feeds
 * what it reads (retrieve_client_read) and its events
 * (retrieve_client_tls_event), and keeps the bev. */
struct retrieve_client *retrieve_client_attach(struct event_base *base, struct bufferevent *bev,
					       const struct retrieve_client_opts *opts,
					       const struct retrieve_client_ops *ops, void *arg);
void retrieve_client_free(struct retrieve_client *c); /* NULL is fine; end is not called */

/* Reads the reply lines waiting in in (while the dialogue expects some). */
void retrieve_client_read(struct retrieve_client *c, struct evbuffer *in);
/* An event on the line during STARTTLS: the certificate check after the
 * handshake, or the failure. 1 if it was one of those (handled), else 0. */
int retrieve_client_tls_event(struct retrieve_client *c, struct bufferevent *bev, short what);

/* The method's command (fmt + CRLF); its final reply goes to ops->reply. */
void retrieve_client_command(struct retrieve_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* QUIT; at its reply (or the connection's end) the job ends with ok, text. */
void retrieve_client_quit(struct retrieve_client *c, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* QUIT, and no wait for its reply (the end pushes it out). */
void retrieve_client_send_quit(struct retrieve_client *c);
/* Ends the job (see ops->end); the first end wins. */
void retrieve_client_end(struct retrieve_client *c, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A step (ops->step). */
void retrieve_client_step(struct retrieve_client *c, const char *what, int code, const char *text);
/* The roles reverse (250 to ATRN or TURN): the connection becomes a session
 * of smtp; its end is ops->closed. */
void retrieve_client_reverse(struct retrieve_client *c, struct smtp_server *smtp);
/* The dialogue is over, the line goes on elsewhere: no more replies read. */
void retrieve_client_detach(struct retrieve_client *c);

int retrieve_client_tls(const struct retrieve_client *c); /* STARTTLS done */
/* The greeting was dialmail's ("... ESMTP dialmail"). */
int retrieve_client_dialmail(const struct retrieve_client *c);
/* What the hub's (last) EHLO reply offered. */
const struct odmr_client_caps *retrieve_client_caps(const struct retrieve_client *c);
/* smtp_server_adopt's flags for the reversed session: TLS, and DIALMAIL
 * when the provider listed XDMBATCH in its EHLO reply (a dialmail hub). */
unsigned retrieve_client_adopt_flags(const struct retrieve_client *c);
int retrieve_client_greeted(const struct retrieve_client *c);	   /* a greeting came */
const char *retrieve_client_host(const struct retrieve_client *c); /* opts->host */
int retrieve_client_port(const struct retrieve_client *c);	   /* opts->port */

#endif
