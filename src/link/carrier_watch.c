/* "NO CARRIER" + silence on a modem line: see carrier_watch.h. */
#include <string.h>

#include "link/carrier_watch.h"

void carrier_watch_init(struct carrier_watch *w, struct event_base *base,
			void (*fired)(evutil_socket_t fd, short what, void *arg), void *arg)
{
	memset(w, 0, sizeof(*w));
	w->ev_quiet = evtimer_new(base, fired, arg);
}

void carrier_watch_arm(struct carrier_watch *w, int timeout_ms)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	evtimer_add(w->ev_quiet, &tv);
}

void carrier_watch_feed(struct carrier_watch *w, struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in), keep = sizeof(w->tail) - 1, tl = strlen(w->tail);
	size_t take = n < 40 ? n : 40;
	struct evbuffer_ptr pos;
	char win[64], *hit;

	if (n == 0)
		return;
	evtimer_del(w->ev_quiet); /* more data: not a drop (yet) */
	memcpy(win, w->tail, tl);
	evbuffer_ptr_set(in, &pos, n - take, EVBUFFER_PTR_SET);
	evbuffer_copyout_from(in, &pos, win + tl, take);
	win[tl + take] = '\0';
	for (size_t i = 0; i < tl + take; i++)
		if (win[i] == '\0')
			win[i] = ' ';
	hit = strstr(win, "NO CARRIER");
	if (hit) {
		carrier_watch_arm(w, CARRIER_WATCH_QUIET_MS);
		/* the words are used up: only what follows them stays for next time */
		memmove(win, hit + 10, strlen(hit + 10) + 1);
	}
	tl = strlen(win);
	memcpy(w->tail, win + (tl > keep ? tl - keep : 0), tl > keep ? keep : tl);
	w->tail[tl > keep ? keep : tl] = '\0';
}

void carrier_watch_free(struct carrier_watch *w)
{
	if (w->ev_quiet)
		event_free(w->ev_quiet);
	memset(w, 0, sizeof(*w));
}
