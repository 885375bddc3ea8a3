/* [answer NAME] lines: see answer.h. The thread owns the modem (open, init,
 * RING, ATA, hang-up); the loop owns a call while it is up: a relay between
 * the tty and one end of a socketpair whose other end is an ODMR-port
 * session (odmr_hub_adopt), so the loop sees every byte (the modem's NO
 * CARRIER ends the call) and knows when the dialogue is over (EOF on the
 * pair: the server session or the hub's reversed client closed it). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "hub/answer.h"
#include "link/carrier_watch.h"
#include "mail/event.h"
#include "hub/odmr.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "link/modem.h"

#define ANSWER_RETRY_MS	    30000 /* a modem that cannot be opened or initialised */
#define ANSWER_RING_GAP_MS  10000 /* no RING for this long: the caller gave up */
#define ANSWER_DTR_HOLD_MS  500
#define ANSWER_END_DRAIN_MS 10000 /* at most, for the last replies to cross the line */
#define ANSWER_TTY_HIGH	    16384 /* bytes waiting for the tty: stop reading the session */
#define ANSWER_TTY_LOW	    4096  /* ... read again once the modem took it down to this */
#define ANSWER_OUTQ_WAIT_MS 5000  /* before the hang-up: the tty's queue empties */
#define ANSWER_GUARD_MS	    300	  /* ... and the modem sends what it holds */

struct answer_line {
	struct answer *a;
	const struct phonebook_entry *e;
	pthread_t thread;
	int started;
	struct modem m; /* the thread's, except while call_up */
	/* thread <-> loop, under a->mu */
	int call_up; /* the thread handed a call to the loop and waits for its end */
	/* the loop's side of a call */
	struct bufferevent *tty, *mine;
	struct carrier_watch cw;
	struct event *ev_drain;
	unsigned long long bytes_in, bytes_out;
	int64_t since_usec;
	int rings;
	int ending; /* the dialogue is over: the last bytes are crossing the line */
};

struct answer {
	struct event_base *base;
	const struct config *cfg;
	char *lock_dir; /* a copy: the threads must not read cfg, which a reload replaces */
	struct odmr_hub *hub;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	int pipe[2]; /* thread -> loop: the index of a line with a call up */
	struct event *ev_pipe;
	struct answer_line *lines;
	size_t n;
};

/* --- the thread: the modem's side ----------------------------------------------- */

static int answer_stopping(struct answer *a)
{
	int stop;

	pthread_mutex_lock(&a->mu);
	stop = a->stop;
	pthread_mutex_unlock(&a->mu);
	return stop;
}

/* Sleeps ms unless the daemon stops first; 1 if it is stopping. */
static int answer_pause(struct answer *a, int ms)
{
	struct timespec ts;
	int stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&a->mu);
	while (!a->stop && pthread_cond_timedwait(&a->cv, &a->mu, &ts) != ETIMEDOUT)
		;
	stop = a->stop;
	pthread_mutex_unlock(&a->mu);
	return stop;
}

static void answer_trouble(struct answer_line *L, const char *what, const struct cause *c)
{
	struct buf d = BUF_INIT;
	const char *kv[] = {"line", L->e->name, "cause", cause_name(c->id), NULL};

	cause_describe(c, &d);
	event_logkv(EV_ANSWER_FAILED, kv, "answer line %s (%s): %s: %s", L->e->name, L->e->device,
		    what, buf_cstr(&d));
	buf_free(&d);
}

/* Opens and initialises the modem; 0 when it is ready for calls. */
static int answer_ready(struct answer_line *L)
{
	struct cause c = {0};
	const char *kv[] = {"line", L->e->name, NULL};

	if (L->m.port.fd < 0 && modem_open(&L->m, L->e, L->a->lock_dir, &c) < 0) {
		answer_trouble(L, "cannot open the modem", &c);
		return -1;
	}
	if (modem_init(&L->m, &c) < 0) {
		answer_trouble(L, "the modem did not initialise", &c);
		modem_close(&L->m);
		return -1;
	}
	event_logkv(EV_ANSWER_READY, kv, "answer line %s (%s): waiting for calls", L->e->name,
		    L->e->device);
	return 0;
}

/* Counts RINGs until e->rings; 1 then, 0 if stopping, -1 if the device failed. */
static int answer_await_call(struct answer_line *L)
{
	long long last = 0;
	struct cause c = {0};

	L->rings = 0;
	while (!answer_stopping(L->a)) {
		int r = modem_wait_ring(&L->m, 1000, &c);
		if (r < 0) {
			answer_trouble(L, "the line failed while waiting for calls", &c);
			return -1;
		}
		if (r == 0) {
			if (L->rings && clock_mono_ms() - last > ANSWER_RING_GAP_MS)
				L->rings = 0; /* the caller gave up */
			continue;
		}
		L->rings++;
		last = clock_mono_ms();
		if (L->rings >= L->e->rings)
			return 1;
	}
	return 0;
}

/* Gives the call to the loop and waits until it is over. */
static void answer_hand_over(struct answer_line *L)
{
	unsigned char idx = (unsigned char)(L - L->a->lines);

	pthread_mutex_lock(&L->a->mu);
	L->call_up = 1;
	if (write(L->a->pipe[1], &idx, 1) != 1)
		L->call_up = 0;
	while (L->call_up && !L->a->stop)
		pthread_cond_wait(&L->a->cv, &L->a->mu);
	pthread_mutex_unlock(&L->a->mu);
}

/* Before the DTR drop: what the loop wrote has left the tty's queue (a
 * hang-up flushes it), and the modem had a moment to send what it holds. */
static void answer_let_out(struct answer_line *L)
{
	long long until = clock_mono_ms() + ANSWER_OUTQ_WAIT_MS;
	int queued = 0;

	while (ioctl(L->m.port.fd, TIOCOUTQ, &queued) == 0 && queued > 0 && clock_mono_ms() < until)
		answer_pause(L->a, 50);
	answer_pause(L->a, ANSWER_GUARD_MS);
}

static void *answer_thread(void *arg)
{
	struct answer_line *L = arg;
	struct cause c = {0};

	while (!answer_stopping(L->a)) {
		if (answer_ready(L) < 0) {
			if (answer_pause(L->a, ANSWER_RETRY_MS))
				break;
			continue;
		}
		int r = answer_await_call(L);
		if (r < 0) {
			modem_close(&L->m);
			if (answer_pause(L->a, ANSWER_RETRY_MS))
				break;
		}
		if (r <= 0)
			continue;
		if (modem_answer(&L->m, &c) < 0) {
			answer_trouble(L, "a call rang but was not connected", &c);
			modem_hangup(&L->m, ANSWER_DTR_HOLD_MS, &c);
			continue;
		}
		answer_hand_over(L);
		answer_let_out(L);
		if (modem_hangup(&L->m, ANSWER_DTR_HOLD_MS, &c) < 0)
			modem_close(&L->m);
	}
	modem_close(&L->m);
	return NULL;
}

/* --- the loop: a call that is up --------------------------------------------------- */

static void answer_call_end(struct answer_line *L, const char *reason, const char *why)
{
	char secs[32];
	const char *kv[] = {"line", L->e->name, "reason", reason, NULL};

	snprintf(secs, sizeof(secs), "%.1f", (double)(clock_usec() - L->since_usec) / 1e6);
	event_logkv(EV_ANSWER_CALL_ENDED, kv,
		    "answer line %s: call ended (%s) after %s s: %llu bytes in, %llu bytes out",
		    L->e->name, why, secs, L->bytes_in, L->bytes_out);
	bufferevent_free(L->tty);
	if (L->mine)
		bufferevent_free(L->mine);
	L->tty = L->mine = NULL;
	carrier_watch_free(&L->cw);
	if (L->ev_drain)
		event_free(L->ev_drain);
	L->ev_drain = NULL;
	pthread_mutex_lock(&L->a->mu);
	L->call_up = 0;
	pthread_cond_broadcast(&L->a->cv);
	pthread_mutex_unlock(&L->a->mu);
}

static void answer_quiet_cb(evutil_socket_t fd, short what, void *arg)
{
	struct answer_line *L = arg;

	if (L->ending)
		answer_call_end(L, "done", "the dialogue ended");
	else
		answer_call_end(L, "carrier", "NO CARRIER");
}

static void answer_tty_read_cb(struct bufferevent *bev, void *arg)
{
	struct answer_line *L = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	carrier_watch_feed(&L->cw, in);
	L->bytes_in += evbuffer_get_length(in);
	if (L->mine)
		evbuffer_add_buffer(bufferevent_get_output(L->mine), in);
	else
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void answer_tty_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct answer_line *L = arg;

	answer_call_end(L, L->ending ? "done" : "closed",
			L->ending ? "the dialogue ended" : "the line closed");
}

static void answer_drained_cb(struct bufferevent *bev, void *arg)
{
	struct answer_line *L = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		answer_call_end(L, "done", "the dialogue ended");
}

/* Session -> tty: the modem is slow, so the session is read only while
 * little waits for the tty (its timeouts then see the line's real pace). */
static void answer_mine_read_cb(struct bufferevent *bev, void *arg)
{
	struct answer_line *L = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	L->bytes_out += evbuffer_get_length(in);
	evbuffer_add_buffer(bufferevent_get_output(L->tty), in);
	if (evbuffer_get_length(bufferevent_get_output(L->tty)) > ANSWER_TTY_HIGH)
		bufferevent_disable(bev, EV_READ);
}

/* The tty's output went down to ANSWER_TTY_LOW: read the session again. */
static void answer_tty_write_cb(struct bufferevent *bev, void *arg)
{
	struct answer_line *L = arg;

	if (L->mine)
		bufferevent_enable(L->mine, EV_READ);
}

static void answer_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	answer_call_end(arg, "done", "the dialogue ended (the last bytes did not leave)");
}

/* The ODMR session closed its end: its last replies (or the hub's QUIT)
 * still have to cross the line before the hang-up. */
static void answer_mine_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct answer_line *L = arg;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	answer_mine_read_cb(bev, L);
	bufferevent_free(L->mine);
	L->mine = NULL;
	L->ending = 1;
	{ /* its own timer: bytes from the line reset the carrier watch's */
		struct timeval tv = {ANSWER_END_DRAIN_MS / 1000, 0};
		L->ev_drain = evtimer_new(L->a->base, answer_drain_timeout_cb, L);
		evtimer_add(L->ev_drain, &tv);
	}
	bufferevent_setwatermark(L->tty, EV_WRITE, 0, 0);
	bufferevent_setcb(L->tty, answer_tty_read_cb, answer_drained_cb, answer_tty_event_cb, L);
	answer_drained_cb(L->tty, L);
}

/* The pair's kernel buffers would hide the line's pace from the session
 * as much as an unbounded relay would: keep them small. */
static void answer_small_buffers(const int sv[2])
{
	int n = ANSWER_TTY_LOW;

	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
	}
}

static int answer_call_start(struct answer_line *L)
{
	const char *kv[] = {"line", L->e->name, NULL};
	int sv[2], fd, rings;
	char peer[96], connect[sizeof(L->m.connect)];
	struct bufferevent *theirs;

	/* the modem is the thread's: read what the call needs under the lock */
	pthread_mutex_lock(&L->a->mu);
	fd = fcntl(L->m.port.fd, F_DUPFD_CLOEXEC, 0);
	rings = L->rings;
	memcpy(connect, L->m.connect, sizeof(connect));
	pthread_mutex_unlock(&L->a->mu);

	if (fd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
		log_warn("answer line %s: cannot relay the call", L->e->name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	evutil_make_socket_nonblocking(fd);
	answer_small_buffers(sv);
	L->bytes_in = L->bytes_out = 0;
	L->ending = 0;
	L->since_usec = clock_usec();
	carrier_watch_init(&L->cw, L->a->base, answer_quiet_cb, L);
	L->tty = bufferevent_socket_new(L->a->base, fd, BEV_OPT_CLOSE_ON_FREE);
	L->mine = bufferevent_socket_new(L->a->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	theirs = bufferevent_socket_new(L->a->base, sv[1], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(L->tty, answer_tty_read_cb, answer_tty_write_cb, answer_tty_event_cb, L);
	bufferevent_setwatermark(L->tty, EV_WRITE, ANSWER_TTY_LOW, 0);
	carrier_watch_output(&L->cw, bufferevent_get_output(L->tty));
	bufferevent_setcb(L->mine, answer_mine_read_cb, NULL, answer_mine_event_cb, L);
	bufferevent_enable(L->tty, EV_READ | EV_WRITE);
	bufferevent_enable(L->mine, EV_READ | EV_WRITE);
	event_logkv(EV_ANSWER_CALL, kv, "answer line %s (%s): call answered after %d RING%s: %s",
		    L->e->name, L->e->device, rings, rings == 1 ? "" : "s",
		    connect[0] ? connect : "CONNECT");
	snprintf(peer, sizeof(peer), "line %s", L->e->name);
	odmr_hub_adopt(L->a->hub, theirs, peer);
	return 0;
}

static void answer_pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct answer *a = arg;
	unsigned char idx;

	while (read(fd, &idx, 1) == 1) {
		struct answer_line *L = idx < a->n ? &a->lines[idx] : NULL;
		if (L && answer_call_start(L) < 0) {
			pthread_mutex_lock(&a->mu);
			L->call_up = 0;
			pthread_cond_broadcast(&a->cv);
			pthread_mutex_unlock(&a->mu);
		}
	}
}

/* --- set-up and shut-down ------------------------------------------------------- */

struct answer *answer_new(struct event_base *base, const struct config *cfg, struct odmr_hub *hub)
{
	struct answer *a;

	if (cfg->answer == NULL || cfg->answer->n == 0)
		return NULL;
	if (hub == NULL) {
		log_warnx("answer lines: the ODMR server could not start; no calls are answered");
		return NULL;
	}
	a = xcalloc(1, sizeof(*a));
	a->base = base;
	a->cfg = cfg;
	a->lock_dir = xstrdup(cfg->lock_dir);
	a->hub = hub;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (pipe2(a->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		fatal("pipe");
	a->ev_pipe = event_new(base, a->pipe[0], EV_READ | EV_PERSIST, answer_pipe_cb, a);
	event_add(a->ev_pipe, NULL);
	a->n = cfg->answer->n > 255 ? 255 : cfg->answer->n;
	a->lines = xcalloc(a->n, sizeof(*a->lines));
	for (size_t i = 0; i < a->n; i++) {
		struct answer_line *L = &a->lines[i];
		L->a = a;
		L->e = &cfg->answer->v[i];
		L->m.port.fd = -1;
		L->started = pthread_create(&L->thread, NULL, answer_thread, L) == 0;
		if (!L->started)
			log_warnx("answer line %s: cannot start its thread", L->e->name);
	}
	return a;
}

void answer_free(struct answer *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++)
		if (a->lines[i].tty)
			answer_call_end(&a->lines[i], "stopping", "the daemon is stopping");
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	for (size_t i = 0; i < a->n; i++)
		if (a->lines[i].started)
			pthread_join(a->lines[i].thread, NULL);
	event_free(a->ev_pipe);
	close(a->pipe[0]);
	close(a->pipe[1]);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a->lines);
	free(a->lock_dir);
	free(a);
}
