/* The hub's answer lines ([answer NAME] sections): modems that take calls
 * from sites whose phone book entry says data = direct. Each line waits for
 * RING in its own thread (the AT dialogue blocks, as link.c's does), answers
 * after `rings` RINGs, and hands the connected tty to the loop, which runs a
 * session of the ODMR port on it (AUTH, the site's outbound mail, ATRN and
 * the held mail back). Invariant: after every call the modem is hung up
 * (DTR drop) and initialised again before the next call is answered. */
#ifndef HUB_ANSWER_H
#define HUB_ANSWER_H
#include <event2/event.h>

#include "mail/config.h"

struct odmr_hub;
struct answer;

/* Starts one thread per [answer NAME] entry of cfg; NULL when there are
 * none. Calls are handed to hub (odmr_hub_adopt). */
struct answer *answer_new(struct event_base *base, const struct config *cfg, struct odmr_hub *hub);
/* Ends calls in progress (event 4132, reason "daemon stopping"), stops and
 * joins the threads (a thread inside ATA may take up to answer_timeout),
 * hangs up and closes the modems. NULL is fine. */
void answer_free(struct answer *a);

#endif
