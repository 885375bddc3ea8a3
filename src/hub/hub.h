/* The hub role: domains held for intermittently connected sites
 * (hold_domains, or a `hold` route) and the ETRN server (RFC 1985) that
 * releases a held domain's mail to the site. Invariant: held mail leaves
 * only through a release (or expires with a DSN); ETRN never delivers
 * anything itself, it starts outbound delivery and answers at once. */
#ifndef HUB_HUB_H
#define HUB_HUB_H
#include "mail/config.h"
#include "lib/buf.h"
#include "queue/queue.h"

struct delivery;
struct hub;

struct hub *hub_new(const struct config *cfg, struct queue *q, struct delivery *d);
void hub_free(struct hub *h);

/* The ETRN command of an SMTP client at address client (numeric text),
 * authenticated as user (NULL: not), with the argument as given. Puts the
 * one-line reply (without CRLF) in reply. h is a struct hub; the shape
 * fits smtp_server_set_etrn. */
void hub_etrn(const char *client, const char *user, const char *arg, struct buf *reply, void *h);

#endif
