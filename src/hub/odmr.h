/* On-Demand Mail Relay (RFC 2645), the hub: the ODMR port (odmr_listen)
 * whose sessions need AUTH, refuse MAIL and answer ATRN for the domains
 * odmr_domains lets the user claim; on 250 the hub becomes the SMTP client
 * on the same connection and delivers the held mail. The branch's side,
 * `retrieve = atrn` in [session], is dialup/atrn.h. Invariant: a held recipient is marked
 * delivered only after the site's 2xx for it; the rest stays held. */
#ifndef HUB_ODMR_H
#define HUB_ODMR_H
#include <stdio.h>

#include <event2/event.h>

#include "mail/config.h"
#include "lib/buf.h"
#include "queue/queue.h"

struct delivery;
struct odmr_hub;

/* The hub's ODMR listeners (odmr_listen) and the server answered calls
 * ([answer NAME]) use; NULL when neither is configured or no listener
 * could be opened (event 1003 logged). */
struct odmr_hub *odmr_hub_new(struct event_base *base, const struct config *cfg, struct queue *q,
			      struct delivery *d);
/* An answered call (hub/answer.c): a session of the ODMR port on bev
 * (which it frees), as if the caller had connected to odmr_listen; peer
 * names the line for the log ("line hubmodem"). */
struct bufferevent;
void odmr_hub_adopt(struct odmr_hub *h, struct bufferevent *bev, const char *peer);
void odmr_hub_free(struct odmr_hub *h); /* NULL is fine */
/* smtp_server_reload_tls for the ODMR port; 0 when h is NULL. */
int odmr_hub_reload_tls(struct odmr_hub *h, struct buf *err);

#endif
