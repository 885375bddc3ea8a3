/* The link check of a dial-up session: once the link is up, the smarthost
 * of a route through it must send its SMTP greeting (220) within
 * check_timeout, or the call counts as failed (cause link-check-failed) and
 * is redialled. Runs in the dial worker thread, so it may block. */
#ifndef DIALUP_LINK_CHECK_H
#define DIALUP_LINK_CHECK_H
#include "lib/buf.h"
#include "mail/config.h"

/* Connects to host:port (resolved with dns_servers, each address in turn,
 * each a share of the time left) and reads the greeting, all within ms. 0
 * with event 4111 logged, or -1 with why filled and event 4112 logged;
 * entry names the phone book entry in the events. */
int link_check_greeting(const struct config *cfg, const char *entry, const char *host, int port,
			int ms, struct buf *why);

#endif
