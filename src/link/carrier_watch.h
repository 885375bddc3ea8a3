/* Carrier loss on a tty without carrier detect: the modem's "NO CARRIER"
 * line followed by a stretch of silence means the call is gone. Shared by
 * both ends of SMTP over a modem line (the branch's data = direct job and
 * the hub's answered calls). Invariant: fires at most once per "NO CARRIER"
 * seen, and only after quiet_ms without further bytes other than the echo
 * of what we wrote (a modem back in command state echoes it). */
#ifndef LINK_CARRIER_WATCH_H
#define LINK_CARRIER_WATCH_H
#include <event2/buffer.h>
#include <event2/event.h>

#define CARRIER_WATCH_QUIET_MS 1500

struct carrier_watch {
	struct event *ev_quiet;
	char tail[16];	/* last bytes seen, for NO CARRIER split across reads */
	int dropped;	/* the quiet timer runs for a NO CARRIER */
	char sent[256]; /* the last bytes written to the line (carrier_watch_output) */
	size_t nsent;
};

/* fired(arg) runs from the loop once the line went quiet after NO CARRIER. */
void carrier_watch_init(struct carrier_watch *w, struct event_base *base,
			void (*fired)(evutil_socket_t fd, short what, void *arg), void *arg);
/* Looks at the bytes now in `in` (new since the last call: call it before
 * draining). More bytes cancel a pending quiet timer. */
void carrier_watch_feed(struct carrier_watch *w, struct evbuffer *in);
/* Watches out, the line's output buffer, so that the modem's echo of our
 * own bytes after NO CARRIER does not count as data (the buffer must not
 * outlive the watch's owner). */
void carrier_watch_output(struct carrier_watch *w, struct evbuffer *out);
/* Arms the timer for timeout_ms without NO CARRIER (the end is expected). */
void carrier_watch_arm(struct carrier_watch *w, int timeout_ms);
void carrier_watch_free(struct carrier_watch *w);

#endif
