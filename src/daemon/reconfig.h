/* Reading the configuration file again while running (SIGHUP, `dialmail
 * reload`). The new file is loaded beside the live one and refused as a
 * whole if it has an error (file:line in the reply and the event; the
 * running configuration stays). Otherwise it takes the live struct
 * config's place, in place, since every module holds a pointer to it; the
 * settings only a restart can change keep their running values and are
 * named in the reply; the old struct is kept until exit, because a
 * connection in progress may still point into it. While a dial-up session
 * is in progress (its worker thread reads the configuration) the switch
 * waits for the session's end. */
#ifndef DAEMON_RECONFIG_H
#define DAEMON_RECONFIG_H
#include <event2/event.h>

#include "lib/buf.h"
#include "mail/config.h"

struct reconfig;

/* Hooks of the daemon: busy (a session in progress: wait), applied (the
 * new configuration is live: modules derive their state again). */
struct reconfig_hooks {
	int (*busy)(void *arg);
	void (*applied)(void *arg);
	void *arg;
};

struct reconfig *reconfig_new(struct event_base *base, struct config *live,
			      const struct reconfig_hooks *hooks);
/* Loads live->path again and applies it (or queues it until the session in
 * progress ends); says what happened in out. 0, or -1 if the file was
 * refused. A daemon running on the embedded defaults has nothing to read:
 * 0 and says so. */
int reconfig_reload(struct reconfig *r, struct buf *out);
/* 1 while a loaded configuration waits for the end of a session. */
int reconfig_pending(const struct reconfig *r);
void reconfig_free(struct reconfig *r);

#endif
