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

	w->dropped = 0;
	evtimer_add(w->ev_quiet, &tv);
}

/* Keeps the last bytes added to the output buffer. */
static void cw_out_cb(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	struct carrier_watch *w = arg;
	size_t n = info->n_added, len = evbuffer_get_length(out);
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v[4];
	int nv;

	if (n == 0 || w->ev_quiet == NULL)
		return;
	if (n > sizeof(w->sent))
		n = sizeof(w->sent);
	if (w->nsent + n > sizeof(w->sent)) {
		size_t cut = w->nsent + n - sizeof(w->sent);
		memmove(w->sent, w->sent + cut, w->nsent - cut);
		w->nsent -= cut;
	}
	/* evbuffer_peek: a bufferevent's output is frozen at its front, which
	 * makes evbuffer_copyout_from fail */
	evbuffer_ptr_set(out, &pos, len - n, EVBUFFER_PTR_SET);
	nv = evbuffer_peek(out, (ev_ssize_t)n, &pos, v, 4);
	for (int i = 0; i < nv && i < 4 && n > 0; i++) {
		size_t k = v[i].iov_len < n ? v[i].iov_len : n;
		memcpy(w->sent + w->nsent, v[i].iov_base, k);
		w->nsent += k;
		n -= k;
	}
}

void carrier_watch_output(struct carrier_watch *w, struct evbuffer *out)
{
	evbuffer_add_cb(out, cw_out_cb, w);
}

/* After NO CARRIER: are the last bytes in only the echo of what we wrote? */
static int cw_echo(const struct carrier_watch *w, const char *win, size_t len)
{
	while (len > 0 && (win[len - 1] == '\r' || win[len - 1] == '\n'))
		len--;
	while (len > 0 && (*win == '\r' || *win == '\n'))
		win++, len--;
	return len > 0 && w->nsent > 0 && memmem(w->sent, w->nsent, win, len) != NULL;
}

void carrier_watch_feed(struct carrier_watch *w, struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in), keep = sizeof(w->tail) - 1, tl = strlen(w->tail);
	size_t take = n < 40 ? n : 40;
	struct evbuffer_ptr pos;
	char win[64], *hit;

	if (n == 0)
		return;
	evbuffer_ptr_set(in, &pos, n - take, EVBUFFER_PTR_SET);
	evbuffer_copyout_from(in, &pos, win + tl, take);
	if (w->dropped && cw_echo(w, win + tl, take)) {
		carrier_watch_arm(w, CARRIER_WATCH_QUIET_MS); /* the modem's echo: still a drop */
		w->dropped = 1;
	} else {
		evtimer_del(w->ev_quiet); /* more data: not a drop (yet) */
		w->dropped = 0;
	}
	memcpy(win, w->tail, tl);
	win[tl + take] = '\0';
	for (size_t i = 0; i < tl + take; i++)
		if (win[i] == '\0')
			win[i] = ' ';
	hit = strstr(win, "NO CARRIER");
	if (hit) {
		carrier_watch_arm(w, CARRIER_WATCH_QUIET_MS);
		w->dropped = 1;
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
