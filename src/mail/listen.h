/* The listen setting: addresses with a service and per-listener overrides,
 * written the way master.cf writes them ("127.0.0.1:587 submission -o
 * smtp_timeout=30m"). Invariant: a parsed item's overrides name settings
 * that may be overridden per listener and hold values their rows accept. */
#ifndef MAIL_LISTEN_H
#define MAIL_LISTEN_H
#include <stddef.h>

#include "lib/buf.h"
#include "mail/settings.h"

struct config;

/* smtp: port 25 style; submission: AUTH before MAIL, STARTTLS before AUTH
 * (RFC 6409); submissions: the same over implicit TLS (RFC 8314). */
enum listen_service { LISTEN_SMTP, LISTEN_SUBMISSION, LISTEN_SUBMISSIONS };

struct listen_opt {
	const struct setting *row; /* a row of the top-level table */
	char *value;		   /* as written, checked by the row */
};

struct listen_spec {
	enum listen_service service;
	struct listen_opt *o;
	size_t n_o;
};

/* T_CUSTOM hooks of the listen row: the addresses go to the strlist at
 * s->off, their specs (same index) to cfg->listen_spec. */
int listen_parse(const struct setting *s, void *cfg, const char *v, struct buf *problem);
void listen_format(const struct setting *s, const void *cfg, struct buf *out);
void listen_release(const struct setting *s, void *cfg);
/* Exchanges the listen items and their options between two configs. */
void listen_swap(const struct setting *s, void *a, void *b);

/* "smtp", "submission", "submissions". */
const char *listen_service_name(enum listen_service sv);

/* The configuration listener i serves with: a shallow copy of cfg (it
 * shares cfg's pointers and lives no longer) with the item's overrides. */
void listen_config(const struct config *cfg, size_t i, struct config *out);

#endif
