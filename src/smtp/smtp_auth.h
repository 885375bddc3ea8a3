/* SMTP AUTH, server side (RFC 4954): SASL PLAIN, LOGIN and CRAM-MD5 checked
 * against the users of auth_users_file. Invariant: an exchange reports
 * SMTP_AUTH_OK only when the password given (or proven) matches the table. */
#ifndef SMTP_SMTP_AUTH_H
#define SMTP_SMTP_AUTH_H
#include <stddef.h>

#include "lib/buf.h"
#include "mail/config.h"

struct config;
struct smtp_auth_users;
struct smtp_auth_exchange;

enum smtp_auth_rc {
	SMTP_AUTH_CONTINUE,  /* send "334 " + challenge, read one more line */
	SMTP_AUTH_OK,	     /* 235 */
	SMTP_AUTH_FAIL,	     /* 535: wrong user or password */
	SMTP_AUTH_MALFORMED, /* 501: not base64, or not the mechanism's form */
	SMTP_AUTH_CANCELLED, /* 501: the client sent "*" */
	SMTP_AUTH_PENDING,   /* Dovecot answers later, through the done callback */
	SMTP_AUTH_TEMPFAIL,  /* 454: the auth service failed */
};

/* "user password" or "user:password" lines, '#' comments; the file must be
 * a regular file only its owner may access. Returns the number of problems
 * (reported in err); *out is set only when there are none. */
int smtp_auth_users_load(struct smtp_auth_users **out, const char *path, struct buf *err);
void smtp_auth_users_free(struct smtp_auth_users *u);
size_t smtp_auth_users_count(const struct smtp_auth_users *u);

/* Config hook: resolves tls_cert_file, tls_key_file and auth_users_file
 * against the configuration file's directory, checks the TLS files, loads
 * cfg->auth_users. Returns the number of problems reported in err. */
int smtp_auth_config_finish(struct config *cfg, const char *cfg_path, struct buf *err);

/* AUTH is configured: auth_users_file or auth_dovecot_socket. */
int smtp_auth_enabled(const struct config *cfg);

/* The mechanisms offered after "AUTH" in EHLO (CRAM-MD5 only when some
 * entry of the table is {PLAIN}: it needs the password itself; PLAIN and
 * LOGIN through Dovecot). */
const char *smtp_auth_mechanisms(const struct config *cfg);

/* An exchange for mech (case-insensitive); NULL if not supported. hostname
 * goes into the CRAM-MD5 challenge. */
struct smtp_auth_exchange *smtp_auth_start(const char *mech, const struct smtp_auth_users *u,
					   const char *hostname);
/* An exchange for mech checked by Dovecot at cfg->auth_dovecot_socket for
 * a client at client_ip (secured: under TLS). Its steps return
 * SMTP_AUTH_PENDING; the outcome comes to done (set it before the first
 * step), with the challenge on SMTP_AUTH_CONTINUE. NULL: mech is not a
 * mechanism name. smtp_auth_set_done on a table exchange makes its crypt(3)
 * checks run in a thread (crypt_verify.h): those steps return PENDING too. */
struct event_base;
struct smtp_auth_exchange *smtp_auth_start_dovecot(const struct config *cfg,
						   struct event_base *base, const char *mech,
						   const char *client_ip, int secured);
void smtp_auth_set_done(struct smtp_auth_exchange *x, struct event_base *base,
			void (*done)(enum smtp_auth_rc rc, const char *challenge, void *arg),
			void *arg);

/* Feeds one client line: the initial response of the AUTH command (NULL
 * if none, "=" if empty) or an answer to a challenge. On CONTINUE the
 * base64 challenge is in challenge (reset first). */
enum smtp_auth_rc smtp_auth_step(struct smtp_auth_exchange *x, const char *response,
				 struct buf *challenge);
/* The mechanism name and the user the client claimed so far (NULL: none). */
const char *smtp_auth_mech(const struct smtp_auth_exchange *x);
const char *smtp_auth_user(const struct smtp_auth_exchange *x);
void smtp_auth_free(struct smtp_auth_exchange *x);

/* For mail/config (config_register): smtp_auth_config_finish after the file,
 * the loaded users freed with the configuration. */
extern const struct config_module smtp_auth_config_module;

#endif
