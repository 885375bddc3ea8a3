/* On-Demand Mail Relay (RFC 2645), both ends. Hub: the ODMR port
 * (odmr_listen) whose sessions need AUTH, refuse MAIL and answer ATRN for
 * the domains odmr_domains lets the user claim; on 250 the hub becomes the
 * SMTP client on the same connection and delivers the held mail. Branch:
 * `retrieve = atrn` in [session]. Invariant: a held recipient is marked
 * delivered only after the site's 2xx for it; the rest stays held. */
#ifndef DAEMON_ODMR_H
#define DAEMON_ODMR_H
#include <stdio.h>

#include <event2/event.h>

#include "daemon/config.h"
#include "daemon/session.h"
#include "lib/buf.h"
#include "queue/queue.h"

#define ODMR_PORT 366 /* RFC 2645 */

struct delivery;
struct odmr_hub;
struct odmr_branch;

/* Check of one odmr_domains item, "user=domain" (config table). */
int odmr_check_domains_item(const char *item, struct buf *problem);
/* 1 if user may claim domain (odmr_domains). */
int odmr_user_owns(const struct config *cfg, const char *user, const char *domain);

/* The hub's ODMR listeners (odmr_listen) and the server answered calls
 * ([answer NAME]) use; NULL when neither is configured or no listener
 * could be opened (event 1003 logged). */
struct odmr_hub *odmr_hub_new(struct event_base *base, const struct config *cfg, struct queue *q,
			      struct delivery *d);
/* An answered call (daemon/answer.c): a session of the ODMR port on bev
 * (which it frees), as if the caller had connected to odmr_listen; peer
 * names the line for the log ("line hubmodem"). */
struct bufferevent;
void odmr_hub_adopt(struct odmr_hub *h, struct bufferevent *bev, const char *peer);
void odmr_hub_free(struct odmr_hub *h); /* NULL is fine */

/* Branch: the ATRN keys of [session] (atrn_host, atrn_domains, atrn_auth,
 * atrn_tls, atrn_ca, atrn_fingerprint); 1 for another key, 0 when parsed,
 * -1 with problem filled. */
int odmr_config_line(struct session_config *sc, const char *key, const char *value,
		     struct buf *problem);
/* retrieve = atrn has what it needs; else the problem text (static). */
const char *odmr_config_problem(const struct session_config *sc);
void odmr_config_show(const struct session_config *sc, FILE *out);
void odmr_config_free(struct session_config *sc);

/* Runs the ATRN retrieval: done(ok, text, arg) once at the end (the hub's
 * QUIT, a refusal, or a failure), never from inside odmr_branch_start.
 * NULL (done not called) only if the job cannot start at all: why filled. */
struct odmr_branch *odmr_branch_start(const struct retrieval_ctx *ctx,
				      void (*done)(int ok, const char *text, void *arg), void *arg,
				      struct buf *why);
void odmr_branch_free(struct odmr_branch *b); /* cancels; done not called */

#endif
