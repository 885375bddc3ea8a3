/* One SMTP listening socket: its address, its service (smtp, submission,
 * submissions) and the configuration its sessions run under, the daemon's
 * with the listen item's "-o name=value" overrides (mail/listen.h).
 * Invariant: cfg shares the daemon configuration's pointers and never
 * outlives it. */
#ifndef SMTP_LISTENER_H
#define SMTP_LISTENER_H
#include "lib/buf.h"
#include "mail/config.h"
#include "mail/listen.h"

struct smtp_server;
struct evconnlistener;

struct listener {
	char *addr;
	enum listen_service service;
	struct config cfg;
	struct smtp_server *srv;
	struct evconnlistener *lev;
};

/* A listener for addr with service smtp and cfg as it is (the ODMR port,
 * tests), or for item i of cfg->listen. */
struct listener *listener_new(const struct config *cfg, const char *addr);
struct listener *listener_new_item(const struct config *cfg, size_t i);
void listener_free(struct listener *l);

/* A bound, listening, non-blocking socket for "host:port" or "[v6]:port"
 * (numeric); -1 with the reason in why. */
int listener_socket(const char *addr, struct buf *why);

/* A listening unix socket at path (an old socket file there is replaced),
 * mode 0666: any local user may connect; -1 with the reason in why. */
int listener_unix_socket(const char *path, struct buf *why);

/* Its sessions must AUTH before MAIL (submission, submissions). */
int listener_auth_required(const struct listener *l);
/* TLS starts with the connection (submissions, RFC 8314). */
int listener_implicit_tls(const struct listener *l);

/* For smtp_auth's configuration check: problems of the submission
 * listeners (TLS and AUTH must be configured), as "where: problem" lines
 * in err; returns their number. */
int listener_config_check(const struct config *cfg, int have_auth, struct buf *err);

#endif
