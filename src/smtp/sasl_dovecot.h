/* SMTP AUTH through Dovecot's auth service (the auth-client protocol
 * Postfix speaks with smtpd_sasl_type = dovecot): one connection to the
 * auth socket per exchange, the SASL data passed through as base64.
 * Invariant: done is called at most once per step, always from the event
 * loop, never from inside sasl_dovecot_start or sasl_dovecot_answer; after a
 * final result (not SASL_DC_CONTINUE) the connection is closed. */
#ifndef SMTP_SASL_DOVECOT_H
#define SMTP_SASL_DOVECOT_H
#include <event2/event.h>

enum sasl_dc_rc {
	SASL_DC_CONTINUE, /* data: the base64 challenge for "334 " */
	SASL_DC_OK,	  /* data: the user Dovecot authenticated */
	SASL_DC_FAIL,	  /* data: the user named, if Dovecot said, else NULL */
	SASL_DC_TEMPFAIL, /* data: why (no auth service, lost, timeout, "temp") */
};

struct sasl_dovecot;

/* Starts mech at the auth socket path for a client at client_ip; resp is
 * the base64 initial response (NULL: none, "=": empty); secured: the
 * session is under TLS. */
struct sasl_dovecot *
sasl_dovecot_start(struct event_base *base, const char *path, const char *mech, const char *resp,
		   const char *client_ip, int secured,
		   void (*done)(enum sasl_dc_rc rc, const char *data, void *arg), void *arg);
/* The client's base64 answer to the last challenge. */
void sasl_dovecot_answer(struct sasl_dovecot *x, const char *b64);
void sasl_dovecot_free(struct sasl_dovecot *x);

#endif
