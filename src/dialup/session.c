/* Dial-up sessions: the session manager (the [session] settings are in
 * session_config.c). It lives on the libevent loop; the blocking link calls
 * (link_up, link_down) run in a worker thread that hands progress lines and its result
 * back through a pipe. Invariant: the loop and the worker never touch the
 * session at the same time (the worker owns it from job start to the pipe
 * byte that says "done"), and every session ends in exactly one ledger line. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "mail/config.h"
#include "deliver/delivery.h"
#include "dialup/direct.h"
#include "dialup/ledger.h"
#include "dialup/link_check.h"
#include "mail/event.h"
#include "dialup/retrieve.h"
#include "mail/routes.h"
#include "dialup/session.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "link/link.h"
#include "link/phonebook.h"
#include "queue/qindex.h"
#include "queue/queue.h"
#include "queue/retry.h"
#include "smtp/smtp_server.h"

#define SESS_TICK_MS	       250    /* checks of a session that is up */
#define SESS_DONE_SETTLE_US    500000 /* the work done: wait this long for a NO CARRIER */
#define SESS_QUEUED_EVERY_S    2      /* dial_when_queued: queue looks */
#define SESS_DEFAULT_WINDOW    900    /* unscheduled session window, seconds */
#define SESS_ROUND_BACKOFF_S   5      /* pause after a failed round, doubling */
#define SESS_ROUND_BACKOFF_MAX 300
#define SESS_STOP_WAIT_S       5 /* shutdown: wait this long for the worker */

/* --- the session manager ------------------------------------------------------ */

enum sess_state { SS_DIALING, SS_BACKOFF, SS_UP, SS_HANGUP };
enum sess_phase { PH_OUTBOUND, PH_RETRIEVE, PH_LINGER };

struct sess_watcher {
	int id;
	struct session_watch w;
	struct sess_watcher *next;
};

struct dial_session {
	enum sess_state state;
	enum sess_phase phase;
	const char *reason; /* "scheduled", "catch-up", "dial command", "queued mail" */
	time_t slot;	    /* the slot served, 0 for none */
	int64_t start_usec, window_end_usec, connect_usec, last_activity_usec;
	const struct phonebook_entry **entries;
	size_t n_entries;
	struct strlist names; /* link names for delivery: the session's entries */
	int rounds;
	json_t *attempts;  /* every attempt, failed or not */
	struct buf causes; /* "isp 5551234 attempt 1 of 3: BUSY (...); ..." */
	size_t n_failed;
	/* worker job results */
	struct link *link;
	struct link_report rep;
	int up_rc;
	char *hangup_reason;
	char *entry_up;			 /* the entry that came up */
	struct retrieve_job *retrieving; /* inbound retrieval in progress, or NULL */
	struct direct *direct;		 /* data = direct: SMTP over the line, or NULL */
	unsigned direct_msgs;		 /* ... its counters once it ended */
	unsigned long long direct_bytes;
	unsigned to_deliver, msgs_out_seen, msgs_in;
	unsigned msgs_out_linger, msgs_in_linger; /* counts at the last activity */
	int64_t busy_since_usec;
	unsigned long long bytes_in;
	int ok;
};

struct sessions {
	struct event_base *base;
	const struct config *cfg;
	const struct session_config *sc;
	struct session_config defaults;
	char *dir;
	struct delivery *delivery;
	struct queue *queue;
	struct smtp_server *smtp;
	/* scheduler state */
	time_t covered;	  /* every slot up to here was served */
	time_t owed;	  /* the slot still owed, 0 for none */
	int catchup_k;	  /* windows missed in a row */
	time_t last_end;  /* end of the last session */
	time_t next_slot; /* the slot timer's slot */
	int last_ok;
	struct event *ev_slot, *ev_catchup, *ev_queued, *ev_tick, *ev_backoff, *ev_notify;
	/* the worker */
	int notify[2], cancel[2];
	pthread_t worker;
	int worker_running;
	void (*job_done)(struct sessions *m);
	pthread_mutex_t mu;
	struct strlist lines; /* progress from the worker, under mu */
	int finished;	      /* the worker's job is over, under mu */
	struct dial_session *cur;
	struct sess_watcher *watchers;
	int next_watch_id;
};

static void sess_start(struct sessions *m, const char *reason, time_t slot, const char *entry);
static void sess_finish(struct sessions *m);
static void sess_arm_slot(struct sessions *m);

static void sess_timer(struct event *ev, double secs)
{
	struct timeval tv;

	if (secs < 0)
		secs = 0;
	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	event_add(ev, &tv);
}

/* Sends a progress line to every watcher. */
static void sess_broadcast(struct sessions *m, const char *line)
{
	for (struct sess_watcher *w = m->watchers; w; w = w->next)
		w->w.line(line, w->w.arg);
}

static void sess_say(struct sessions *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sess_say(struct sessions *m, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	sess_broadcast(m, buf_cstr(&b));
	buf_free(&b);
}

/* --- the worker thread ---------------------------------------------------------- */

/* Worker side: a progress line for the loop. */
static void sess_progress(void *arg, const char *line)
{
	struct sessions *m = arg;

	pthread_mutex_lock(&m->mu);
	strlist_add(&m->lines, line);
	pthread_mutex_unlock(&m->mu);
	if (write(m->notify[1], "p", 1) < 0 && errno != EAGAIN)
		log_warn("session: notify");
}

/* Worker side: waits ms, or less when the daemon is stopping (returns 1). */
static int sess_pause(void *arg, int ms)
{
	struct sessions *m = arg;
	struct pollfd p = {m->cancel[0], POLLIN, 0};
	int rc;

	do
		rc = poll(&p, 1, ms);
	while (rc < 0 && errno == EINTR);
	return rc > 0;
}

/* The smarthost of a route through this session's link: one whose via is
 * the entry that came up, else any of the session's entries. */
static const struct route *sess_smarthost(const struct sessions *m, const char *entry)
{
	const struct routes *rt = m->cfg->routes;
	const struct route *any = NULL;

	for (size_t i = 0; rt && i < rt->n; i++) {
		const struct route *r = &rt->v[i];
		if (r->type != ROUTE_SMARTHOST || r->via == NULL)
			continue;
		if (strcmp(r->via, entry) == 0)
			return r;
		if (any == NULL && m->cur && strlist_has(&m->cur->names, r->via))
			any = r;
	}
	return any;
}

/* Worker side (link_opts.check): the smarthost's 220 through the link. */
static int sess_check(void *arg, const char *entry, struct buf *why)
{
	struct sessions *m = arg;
	const struct route *r = sess_smarthost(m, entry);
	const struct phonebook_entry *e = phonebook_find(m->cfg->phonebook, entry);

	if (r == NULL)
		return 0; /* no route through this link: nothing to check */
	if (e && e->data == PB_DATA_DIRECT)
		return 0; /* no IP: the job on the line reads the hub's greeting */
	if (link_check_greeting(m->cfg, entry, r->host, r->port, m->sc->check_timeout * 1000, why) <
	    0)
		return -1;
	sess_progress(m, "link check ok: the smarthost answered");
	return 0;
}

static void *sess_worker_up(void *arg)
{
	struct sessions *m = arg;
	struct dial_session *s = m->cur;
	struct link_opts o = {0};

	o.lock_dir = m->cfg->lock_dir;
	o.deadline_usec = s->window_end_usec;
	o.pause = sess_pause;
	o.check = sess_check;
	o.progress = sess_progress;
	o.arg = m;
	s->up_rc = link_up(s->entries, s->n_entries, &o, &s->link, &s->rep);
	return NULL;
}

static void *sess_worker_down(void *arg)
{
	struct sessions *m = arg;
	struct dial_session *s = m->cur;

	link_down(s->link, s->hangup_reason);
	s->link = NULL;
	return NULL;
}

struct sess_job {
	struct sessions *m;
	void *(*fn)(void *);
};

static void *sess_worker_main(void *arg)
{
	struct sess_job *j = arg;
	struct sessions *m = j->m;

	j->fn(m);
	free(j);
	pthread_mutex_lock(&m->mu);
	m->finished = 1;
	pthread_mutex_unlock(&m->mu);
	if (write(m->notify[1], "d", 1) < 0)
		log_warn("session: notify");
	return NULL;
}

/* Runs fn(m) in the worker thread; then(m) runs on the loop when it is done. */
static void sess_job(struct sessions *m, void *(*fn)(void *), void (*then)(struct sessions *))
{
	struct sess_job *j = xmalloc(sizeof(*j));

	j->m = m;
	j->fn = fn;
	m->job_done = then;
	m->finished = 0;
	if (pthread_create(&m->worker, NULL, sess_worker_main, j) != 0) {
		log_warn("session: cannot start the worker thread; running inline");
		fn(m);
		free(j);
		then(m);
		return;
	}
	m->worker_running = 1;
}

/* Loop side: progress lines and the end of a job. */
static void sess_on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct sessions *m = arg;
	struct strlist lines = {0};
	char drain[64];
	int finished;

	while (read(fd, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&m->mu);
	lines = m->lines;
	m->lines = (struct strlist){0};
	finished = m->finished;
	m->finished = 0;
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < lines.n; i++)
		sess_broadcast(m, lines.v[i]);
	strlist_free(&lines);
	if (finished && m->worker_running) {
		pthread_join(m->worker, NULL);
		m->worker_running = 0;
		m->job_done(m);
	}
}

/* The session's line of the ledger (dialup/ledger.c). */
static void sess_ledger(struct sessions *m, const struct dial_session *s, unsigned msgs_out,
			unsigned long long bytes_out, time_t next)
{
	const struct ledger_record r = {
	    .start_usec = s->start_usec,
	    .slot = s->slot,
	    .reason = s->reason,
	    .ok = s->ok,
	    .attempts = s->attempts,
	    .rounds = s->rounds,
	    .entry = s->entry_up,
	    .connect_usec = s->connect_usec,
	    .bytes_out = bytes_out,
	    .bytes_in = s->bytes_in,
	    .msgs_out = msgs_out,
	    .msgs_in = s->msgs_in,
	    .hangup_reason = s->hangup_reason,
	    .next_slot = next,
	};

	ledger_append(m->dir, &r);
}

/* --- queue looks (dial_when_queued, "delivered 3/12") ------------------------------ */

struct sess_count {
	unsigned n, urgent, total;
};

/* Messages queued, and those with a pending recipient whose route goes via
 * one of names (urgent ones among them): from the queue's index, no disk. */
static void sess_count(struct sessions *m, const struct strlist *names, struct sess_count *c)
{
	struct qindex_totals t;

	memset(c, 0, sizeof(*c));
	if (m->queue == NULL)
		return;
	qindex_totals(queue_index(m->queue), &t);
	c->total = t.messages;
	qindex_links_count(queue_index(m->queue), names, &c->n, &c->urgent);
}

/* The link names of a session: the entries it may bring up. */
static void sess_names(const struct sessions *m, struct strlist *names)
{
	const struct phonebook *pb = m->cfg->phonebook;

	if (m->sc->entries.n)
		strlist_copy(names, &m->sc->entries);
	else
		for (size_t i = 0; pb && i < pb->n; i++)
			strlist_add(names, pb->v[i].name);
}

/* --- a session's life ----------------------------------------------------------------- */

/* The connected link's bandwidth: the modem's CONNECT speed, else the
 * entry's bandwidth setting; 0 unknown. */
static long sess_link_bps(const struct dial_session *s)
{
	if (s->link == NULL)
		return 0;
	return link_speed(s->link) > 0 ? link_speed(s->link) : link_entry(s->link)->bandwidth;
}

static void sess_link_up_all(struct sessions *m, void (*on_idle)(const char *, void *))
{
	long bps = sess_link_bps(m->cur);

	for (size_t i = 0; i < m->cur->names.n; i++)
		delivery_link_up(m->delivery, m->cur->names.v[i], bps, on_idle, m);
}

static int sess_busy(struct sessions *m)
{
	for (size_t i = 0; i < m->cur->names.n; i++)
		if (delivery_link_busy(m->delivery, m->cur->names.v[i]))
			return 1;
	return 0;
}

static void sess_stats(struct sessions *m, unsigned *msgs, unsigned long long *bytes)
{
	*msgs = 0;
	*bytes = 0;
	for (size_t i = 0; m->cur && i < m->cur->names.n; i++) {
		unsigned n = 0;
		unsigned long long b = 0;
		delivery_link_stats(m->delivery, m->cur->names.v[i], &n, &b);
		*msgs += n;
		*bytes += b;
	}
	if (m->cur) {
		unsigned n = 0;
		unsigned long long b = 0;
		direct_stats(m->cur->direct, &n, &b);
		*msgs += m->cur->direct ? n : m->cur->direct_msgs;
		*bytes += m->cur->direct ? b : m->cur->direct_bytes;
	}
}

/* Appends the failed attempts of the last round to the session. */
static void sess_take_report(struct dial_session *s)
{
	for (size_t i = 0; i < s->rep.n; i++) {
		const struct link_attempt *a = &s->rep.v[i];
		struct buf words = BUF_INIT;
		json_t *o;

		cause_describe(&a->cause, &words);
		o = json_pack("{s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:o}", "entry", a->entry,
			      "number", a->number, "attempt", a->n, "of", a->of, "cause",
			      cause_name(a->cause.id), "class",
			      cause_class_name(cause_class(a->cause.id)), "text", buf_cstr(&words),
			      "time", ledger_json_time((time_t)(a->at_usec / 1000000)));
		json_array_append_new(s->attempts, o);
		buf_printf(&s->causes, "%s%s%s%s attempt %d of %d: %s", s->causes.len ? "; " : "",
			   a->entry, a->number[0] ? " " : "", a->number, a->n, a->of,
			   buf_cstr(&words));
		s->n_failed++;
		buf_free(&words);
	}
}

/* Entries whose last cause is configuration or credentials are not tried
 * again in this window. */
static void sess_drop_config_failures(struct dial_session *s)
{
	size_t k = 0;

	for (size_t i = 0; i < s->n_entries; i++) {
		int drop = 0;
		for (size_t j = 0; j < s->rep.n; j++)
			if (strcmp(s->rep.v[j].entry, s->entries[i]->name) == 0)
				drop = cause_class(s->rep.v[j].cause.id) == CC_CONFIG;
		if (!drop)
			s->entries[k++] = s->entries[i];
	}
	s->n_entries = k;
}

static void sess_hangup(struct sessions *m, const char *reason);

static void sess_on_tick(evutil_socket_t fd, short what, void *arg);

static void sess_retrieved(int ok, const char *text, void *arg)
{
	struct sessions *m = arg;

	if (m->cur)
		m->cur->retrieving = NULL; /* the job is gone */
	if (m->cur == NULL || m->cur->state != SS_UP)
		return;
	sess_say(m, "inbound retrieval: %s", text);
	m->cur->phase = PH_LINGER;
	m->cur->last_activity_usec = clock_usec();
	m->cur->msgs_out_linger = m->cur->msgs_out_seen;
	m->cur->msgs_in_linger = m->cur->msgs_in;
	event_active(m->ev_tick, EV_TIMEOUT, 0); /* done now? */
}

/* Starts the retrieval step, towards the smarthost the link check used. */
static void sess_retrieve(struct sessions *m)
{
	struct dial_session *s = m->cur;
	const struct route *r = sess_smarthost(m, link_entry(s->link)->name);
	struct retrieval_ctx ctx = {.base = m->base,
				    .cfg = m->cfg,
				    .sc = m->sc,
				    .smtp = m->smtp,
				    .msgs_in = &s->msgs_in,
				    .entry = link_entry(s->link)->name,
				    .host = r ? r->host : NULL,
				    .port = r ? r->port : 0,
				    .done = sess_retrieved,
				    .arg = m};
	struct retrieve_job *j = retrieve_method(m->sc->retrieve)->run(&ctx);

	if (m->cur == s && s->phase == PH_RETRIEVE)
		s->retrieving = j;
}

static void sess_outbound_check(struct sessions *m)
{
	struct dial_session *s = m->cur;
	unsigned msgs;
	unsigned long long bytes;

	sess_stats(m, &msgs, &bytes);
	if (msgs != s->msgs_out_seen) {
		s->msgs_out_seen = msgs;
		sess_say(m, "delivered %u/%u", msgs, s->to_deliver > msgs ? s->to_deliver : msgs);
	}
	if (s->phase != PH_OUTBOUND || sess_busy(m))
		return;
	event_log(EV_SESSION_OUTBOUND_DONE,
		  "Outbound delivery through %s done: %u messages, %llu bytes sent",
		  link_entry(s->link)->name, msgs, bytes);
	sess_say(m, "outbound done: %u messages sent", msgs);
	s->phase = PH_RETRIEVE;
	sess_retrieve(m);
}

/* The mail state says the work is done: outbound idle for the link,
 * retrieval over (the caller is lingering), no provider session open, and
 * for methods after which the provider may still call (etrn, command)
 * done_grace of quiet. */
static int sess_done(struct sessions *m, int64_t now)
{
	const struct retrieval *r = retrieve_method(m->sc->retrieve);
	int64_t grace = r && r->end_known ? 0 : (int64_t)m->sc->done_grace * 1000000;

	/* A line that drops takes the connection through it down an instant
	 * before the modem says NO CARRIER: the work looks done then, but the
	 * real cause of the end is the carrier. Half a second decides it. */
	if (grace < SESS_DONE_SETTLE_US)
		grace = SESS_DONE_SETTLE_US;

	if (!m->sc->hangup_when_done || sess_busy(m) || smtp_server_inbound_sessions(m->smtp) > 0)
		return 0;
	return now - m->cur->last_activity_usec >= grace;
}

static void sess_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sessions *m = arg;
	struct dial_session *s = m->cur;
	int64_t now = clock_usec();
	struct cause c = {0};

	if (s == NULL || s->state != SS_UP)
		return;
	if (link_alive(s->link, &c) < 0) {
		struct buf words = BUF_INIT;
		const char *kv[] = {"entry", link_entry(s->link)->name, "cause", cause_name(c.id),
				    NULL};
		cause_describe(&c, &words);
		event_logkv(EV_SESSION_LINK_LOST, kv,
			    "The link %s dropped during the session: %s; unfinished mail stays "
			    "queued",
			    link_entry(s->link)->name, buf_cstr(&words));
		sess_hangup(m, "carrier lost");
		buf_free(&words);
		return;
	}
	if (now - s->connect_usec >= (int64_t)m->sc->max_session_time * 1000000) {
		sess_hangup(m, "max_session_time reached");
		return;
	}
	sess_outbound_check(m);
	if (s->phase != PH_LINGER)
		return;
	/* A queue pass makes the link look busy for an instant; only outbound
	 * work that lasts counts as activity. */
	if (!sess_busy(m))
		s->busy_since_usec = 0;
	else if (s->busy_since_usec == 0)
		s->busy_since_usec = now;
	if ((s->busy_since_usec && now - s->busy_since_usec >= 2 * SESS_TICK_MS * 1000) ||
	    smtp_server_inbound_sessions(m->smtp) > 0 || s->msgs_out_seen != s->msgs_out_linger ||
	    s->msgs_in != s->msgs_in_linger) {
		s->last_activity_usec = now;
		s->msgs_out_linger = s->msgs_out_seen;
		s->msgs_in_linger = s->msgs_in;
	}
	if (sess_done(m, now)) {
		sess_hangup(m, "done");
		return;
	}
	/* The safety net where the state cannot be known. Never in the middle of a delivery through
	 * the link (mail a LAN client just submitted): a hang-up there cuts a transaction whose 250
	 * may be on its way, and the resend is a duplicate. */
	if (now - s->last_activity_usec >= (int64_t)m->sc->idle_timeout * 1000000 && !sess_busy(m))
		sess_hangup(m, "idle");
}

static void sess_on_idle(const char *name, void *arg)
{
	struct sessions *m = arg;

	if (m->cur && m->cur->state == SS_UP && m->cur->phase == PH_OUTBOUND)
		event_active(m->ev_tick, EV_TIMEOUT, 0);
}

/* The attempt number of the call that connected: one after the failed
 * calls of this round on the same entry and number. */
static int sess_connected_attempt(const struct dial_session *s)
{
	int n = 1;

	for (size_t i = 0; i < s->rep.n; i++)
		if (strcmp(s->rep.v[i].entry, link_entry(s->link)->name) == 0 &&
		    strcmp(s->rep.v[i].number, link_number(s->link)) == 0)
			n++;
	return n;
}

/* data = direct: the job on the line ends the session at the hub's QUIT. */
static void sess_direct_done(int ok, const char *text, void *arg)
{
	struct sessions *m = arg;
	struct dial_session *s = m->cur;

	if (s == NULL || s->direct == NULL)
		return;
	direct_stats(s->direct, &s->direct_msgs, &s->direct_bytes);
	s->direct = NULL; /* it freed itself */
	if (s->state != SS_UP)
		return;
	sess_say(m, "SMTP over the line: %s", text);
	sess_hangup(m, ok ? "the hub ended the call (QUIT)" : "SMTP over the line failed");
}

static void sess_direct(struct sessions *m)
{
	struct dial_session *s = m->cur;
	struct buf why = BUF_INIT;
	struct direct_ctx ctx = {.base = m->base,
				 .cfg = m->cfg,
				 .sc = m->sc,
				 .q = m->queue,
				 .d = m->delivery,
				 .smtp = m->smtp,
				 .entry = link_entry(s->link)->name,
				 .fd = link_fd(s->link),
				 .done = sess_direct_done,
				 .arg = m};

	s->phase = PH_RETRIEVE;
	s->direct = direct_start(&ctx, &why);
	if (s->direct == NULL) {
		sess_say(m, "SMTP over the line cannot start: %s", buf_cstr(&why));
		sess_hangup(m, "SMTP over the line cannot start");
	}
	buf_free(&why);
}

static void sess_connected(struct sessions *m)
{
	struct dial_session *s = m->cur;
	struct sess_count c;
	struct timeval tick = {0, SESS_TICK_MS * 1000};
	json_t *o;

	s->state = SS_UP;
	s->phase = PH_OUTBOUND;
	s->connect_usec = s->last_activity_usec = clock_usec();
	s->entry_up = xstrdup(link_entry(s->link)->name);
	o = json_pack(
	    "{s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:i}", "entry", link_entry(s->link)->name,
	    "number", link_number(s->link), "attempt", sess_connected_attempt(s), "of",
	    link_entry(s->link)->type == PB_MODEM ? link_entry(s->link)->redial_attempts : 1,
	    "cause", "connected", "class", "none", "text",
	    link_connect_text(s->link)[0] ? link_connect_text(s->link) : "up", "speed",
	    link_speed(s->link));
	json_object_set_new(o, "time", ledger_json_time(clock_now()));
	json_array_append_new(s->attempts, o);
	sess_count(m, &s->names, &c);
	s->to_deliver = c.n;
	sess_say(m, "connected: %s%s%s; %u messages queued for the link", link_entry(s->link)->name,
		 link_connect_text(s->link)[0] ? " " : "", link_connect_text(s->link), c.n);
	event_add(m->ev_tick, &tick);
	if (link_fd(s->link) >= 0) {
		sess_direct(m);
		return;
	}
	/* Everything queued for the link goes now, whatever its retry time
	 * (delivery_link_up); unrelated deferred mail keeps its retry time. */
	sess_link_up_all(m, sess_on_idle);
	event_active(m->ev_tick, EV_TIMEOUT, 0);
}

static void sess_round(struct sessions *m);

static void sess_on_backoff(evutil_socket_t fd, short what, void *arg)
{
	sess_round(arg);
}

static void sess_round_done(struct sessions *m)
{
	struct dial_session *s = m->cur;
	int64_t now = clock_usec();
	int backoff = SESS_ROUND_BACKOFF_S;

	s->rounds++;
	sess_take_report(s);
	if (s->up_rc == 0) {
		sess_connected(m);
		link_report_free(&s->rep);
		return;
	}
	sess_drop_config_failures(s);
	for (int i = 1; i < s->rounds && backoff < SESS_ROUND_BACKOFF_MAX; i++)
		backoff *= 2;
	if (backoff > SESS_ROUND_BACKOFF_MAX)
		backoff = SESS_ROUND_BACKOFF_MAX;
	if (s->rep.window_closed || s->n_entries == 0 ||
	    now + (int64_t)backoff * 1000000 >= s->window_end_usec) {
		link_report_free(&s->rep);
		sess_say(m, "%s",
			 s->n_entries == 0 ? "no entry left to try in this window"
					   : "the session window closed");
		sess_finish(m);
		return;
	}
	link_report_free(&s->rep);
	sess_say(m, "round %d failed; next round in %d s", s->rounds, backoff);
	s->state = SS_BACKOFF;
	sess_timer(m->ev_backoff, backoff);
}

static void sess_round(struct sessions *m)
{
	struct dial_session *s = m->cur;

	s->state = SS_DIALING;
	sess_say(m, "dialing (round %d)", s->rounds + 1);
	sess_job(m, sess_worker_up, sess_round_done);
}

static void sess_down_done(struct sessions *m)
{
	sess_say(m, "hung up: %s", m->cur->hangup_reason);
	sess_finish(m);
}

static void sess_hangup(struct sessions *m, const char *reason)
{
	struct dial_session *s = m->cur;

	event_del(m->ev_tick);
	retrieve_cancel(s->retrieving);
	s->retrieving = NULL;
	direct_free(s->direct);
	s->direct = NULL;
	s->state = SS_HANGUP;
	s->ok = 1;
	free(s->hangup_reason);
	s->hangup_reason = xstrdup(reason);
	sess_say(m, "hanging up: %s", reason);
	for (size_t i = 0; i < s->names.n; i++)
		delivery_link_down(m->delivery, s->names.v[i]);
	sess_job(m, sess_worker_down, sess_down_done);
}

static void sess_free_session(struct dial_session *s)
{
	retrieve_cancel(s->retrieving);
	direct_free(s->direct);
	json_decref(s->attempts);
	buf_free(&s->causes);
	strlist_free(&s->names);
	free(s->entries);
	free(s->hangup_reason);
	free(s->entry_up);
	link_report_free(&s->rep);
	free(s);
}

static void sess_catch_up_later(struct sessions *m, const struct dial_session *s)
{
	char when[64], slot[64];
	int wait = schedule_backoff(++m->catchup_k);
	int window = (int)((s->window_end_usec - s->start_usec) / 1000000);
	time_t at;

	if (wait > window && window > 0)
		wait = window;
	at = clock_now() + wait;
	clock_local(m->owed, slot, sizeof(slot));
	clock_local(at, when, sizeof(when));
	{
		char iso[64];
		const char *kv[] = {"slot", iso, NULL};
		clock_iso8601((int64_t)m->owed * 1000000, iso, sizeof(iso));
		event_logkv(EV_SESSION_CATCH_UP, kv,
			    "Catch-up session for the slot of %s scheduled at %s (attempt %d)",
			    slot, when, m->catchup_k + 1);
	}
	sess_timer(m->ev_catchup, wait);
}

/* The end of a session: ledger, events, watchers, scheduler state. */
static void sess_finish(struct sessions *m)
{
	struct dial_session *s = m->cur;
	unsigned msgs = 0;
	unsigned long long bytes = 0;
	time_t now = clock_now(), next;
	char slot[64], iso[64] = "";
	const char *kv[] = {"reason", s->reason, "slot", s->slot ? iso : NULL, NULL};
	struct sess_watcher *w;

	if (s->slot)
		clock_iso8601((int64_t)s->slot * 1000000, iso, sizeof(iso));
	clock_local(s->slot, slot, sizeof(slot));
	sess_stats(m, &msgs, &bytes);
	if (s->ok) {
		m->covered = now;
		m->owed = 0;
		m->catchup_k = 0;
		if (schedule_state_save(m->dir, m->covered) < 0)
			log_warn("session: cannot save %s/scheduler.state", m->dir);
	}
	next = schedule_next(&m->sc->schedule, now);
	sess_ledger(m, s, msgs, bytes, next);
	if (s->ok) {
		const char *ekv[] = {"entry", s->entry_up, "reason", s->hangup_reason, NULL};
		event_logkv(EV_SESSION_ENDED, ekv,
			    "Session ended (%s): hung up (%s) after %lld s connected; %u messages "
			    "and %llu bytes out, %u messages and %llu bytes in",
			    s->reason, s->hangup_reason,
			    (long long)((clock_usec() - s->connect_usec) / 1000000), msgs, bytes,
			    s->msgs_in, s->bytes_in);
	} else {
		event_logkv(EV_SESSION_MISSED, kv,
			    "Session (%s, slot %s) could not be made: no working link within its "
			    "window after %zu failed attempts: %s",
			    s->reason, slot, s->n_failed,
			    s->causes.len ? buf_cstr(&s->causes) : "no attempt could start");
	}
	m->last_ok = s->ok;
	m->last_end = now;
	while ((w = m->watchers) != NULL) {
		m->watchers = w->next;
		w->w.done(s->ok, s->ok ? s->hangup_reason : "the session could not be made",
			  w->w.arg);
		free(w);
	}
	m->cur = NULL;
	if (!s->ok && m->owed)
		sess_catch_up_later(m, s);
	sess_free_session(s);
	sess_arm_slot(m);
}

/* The session's window: until the next slot (15 min unscheduled), capped
 * by session_window. */
static int64_t sess_window_end(struct sessions *m, int64_t start)
{
	time_t next = schedule_next(&m->sc->schedule, (time_t)(start / 1000000));
	int64_t end =
	    next ? (int64_t)next * 1000000 : start + (int64_t)SESS_DEFAULT_WINDOW * 1000000;

	if (m->sc->session_window > 0 && start + (int64_t)m->sc->session_window * 1000000 < end)
		end = start + (int64_t)m->sc->session_window * 1000000;
	if (next == 0 && m->sc->session_window > 0)
		end = start + (int64_t)m->sc->session_window * 1000000;
	if (end < start + 1000000)
		end = start + 1000000;
	return end;
}

static int sess_pick_entries(struct sessions *m, struct dial_session *s, const char *entry,
			     struct buf *why)
{
	const struct phonebook *pb = m->cfg->phonebook;

	if (entry) {
		const struct phonebook_entry *e = phonebook_find(pb, entry);
		if (e == NULL) {
			buf_printf(why, "no phone book entry '%s'", entry);
			return -1;
		}
		s->entries = xcalloc(1, sizeof(*s->entries));
		s->entries[s->n_entries++] = e;
		return 0;
	}
	s->entries = xcalloc(s->names.n + 1, sizeof(*s->entries));
	for (size_t i = 0; i < s->names.n; i++) {
		const struct phonebook_entry *e = phonebook_find(pb, s->names.v[i]);
		if (e)
			s->entries[s->n_entries++] = e;
	}
	if (s->n_entries == 0) {
		buf_puts(why, "no phone book entries to dial (add a [phonebook NAME] section)");
		return -1;
	}
	return 0;
}

static struct dial_session *sess_new(struct sessions *m, const char *reason, time_t slot,
				     const char *entry, struct buf *why)
{
	struct dial_session *s = xcalloc(1, sizeof(*s));

	s->reason = reason;
	s->slot = slot;
	s->attempts = json_array();
	sess_names(m, &s->names);
	if (entry && !strlist_has(&s->names, entry))
		strlist_add(&s->names, entry); /* its routes go out while it is up */
	if (sess_pick_entries(m, s, entry, why) < 0) {
		sess_free_session(s);
		return NULL;
	}
	s->start_usec = clock_usec();
	s->window_end_usec = sess_window_end(m, s->start_usec);
	return s;
}

static void sess_start(struct sessions *m, const char *reason, time_t slot, const char *entry)
{
	struct buf why = BUF_INIT, list = BUF_INIT;
	char slotstr[64], until[64], iso[64] = "";
	const char *kv[] = {"reason", reason, "slot", slot ? iso : NULL, NULL};
	struct dial_session *s;

	if (m->cur)
		return;
	s = sess_new(m, reason, slot, entry, &why);
	if (s == NULL) {
		log_warnx("session: %s", buf_cstr(&why));
		buf_free(&why);
		return;
	}
	m->cur = s;
	for (size_t i = 0; i < s->n_entries; i++)
		buf_printf(&list, "%s%s", i ? ", " : "", s->entries[i]->name);
	if (slot)
		clock_iso8601((int64_t)slot * 1000000, iso, sizeof(iso));
	clock_local(slot, slotstr, sizeof(slotstr));
	clock_local((time_t)(s->window_end_usec / 1000000), until, sizeof(until));
	event_logkv(EV_SESSION_STARTED, kv,
		    "Session started (%s, slot %s): entries %s; window until %s", reason, slotstr,
		    buf_cstr(&list), until);
	sess_say(m, "session started (%s): entries %s", reason, buf_cstr(&list));
	buf_free(&why);
	buf_free(&list);
	sess_round(m);
}

/* --- triggers ------------------------------------------------------------------------ */

static void sess_on_slot(evutil_socket_t fd, short what, void *arg)
{
	struct sessions *m = arg;
	time_t slot = m->next_slot;
	int64_t early = (int64_t)slot * 1000000 - clock_usec();

	/* libevent's coarse monotonic clock may fire a few ms before the slot;
	 * starting then would serve the slot with a window that ends at it. */
	if (early > 0) {
		sess_timer(m->ev_slot, (double)early / 1e6 + 0.002);
		return;
	}
	if (m->owed == 0)
		m->owed = slot;
	if (m->cur == NULL) {
		event_del(m->ev_catchup);
		sess_start(m, m->owed < slot ? "catch-up" : "scheduled", m->owed, NULL);
	}
	sess_arm_slot(m);
}

static void sess_arm_slot(struct sessions *m)
{
	time_t now = clock_now();

	event_del(m->ev_slot);
	m->next_slot = schedule_next(&m->sc->schedule, now);
	if (m->next_slot)
		sess_timer(m->ev_slot, (double)(m->next_slot - now) -
					   (double)(clock_usec() % 1000000) / 1e6 + 0.001);
}

static void sess_on_catchup(evutil_socket_t fd, short what, void *arg)
{
	struct sessions *m = arg;

	if (m->cur == NULL && m->owed)
		sess_start(m, "catch-up", m->owed, NULL);
}

static void sess_on_queued(evutil_socket_t fd, short what, void *arg)
{
	struct sessions *m = arg;
	struct sess_count c;
	struct strlist names = {0};
	int due;

	if (m->cur || (m->last_end && clock_now() - m->last_end < m->sc->min_dial_interval))
		return;
	sess_names(m, &names);
	sess_count(m, &names, &c);
	strlist_free(&names);
	due = m->sc->dwq == DWQ_URGENT ? c.urgent > 0 : c.n >= (unsigned)m->sc->dwq_count;
	if (due)
		sess_start(m, "queued mail", m->owed, NULL);
}

/* Start-up: a slot that passed while the daemon was down is dialled now. */
static void sess_startup_catch_up(struct sessions *m)
{
	time_t now = clock_now();
	char slot[64], iso[64];
	const char *kv[] = {"slot", iso, NULL};

	if (schedule_state_load(m->dir, &m->covered) < 0) {
		m->covered = now;
		if (schedule_state_save(m->dir, now) < 0)
			log_warn("session: cannot save %s/scheduler.state", m->dir);
	}
	m->owed = schedule_owed(&m->sc->schedule, m->covered, now);
	if (m->owed == 0)
		return;
	clock_local(m->owed, slot, sizeof(slot));
	clock_iso8601((int64_t)m->owed * 1000000, iso, sizeof(iso));
	event_logkv(EV_SESSION_CATCH_UP, kv,
		    "Catch-up session for the slot of %s, missed while the daemon was down: "
		    "dialing now",
		    slot);
	sess_timer(m->ev_catchup, 0);
}

struct sessions *sessions_new(struct event_base *base, const struct config *cfg, const char *dir,
			      struct delivery *d, struct queue *q, struct smtp_server *smtp)
{
	struct sessions *m = xcalloc(1, sizeof(*m));

	m->base = base;
	m->cfg = cfg;
	session_config_defaults(&m->defaults);
	m->sc = cfg->session ? cfg->session : &m->defaults;
	m->dir = xstrdup(dir);
	m->delivery = d;
	m->queue = q;
	m->smtp = smtp;
	m->next_watch_id = 1;
	pthread_mutex_init(&m->mu, NULL);
	if (pipe2(m->notify, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(m->cancel, O_CLOEXEC) < 0)
		fatal("session: pipe");
	m->ev_notify = event_new(base, m->notify[0], EV_READ | EV_PERSIST, sess_on_notify, m);
	m->ev_slot = evtimer_new(base, sess_on_slot, m);
	m->ev_catchup = evtimer_new(base, sess_on_catchup, m);
	m->ev_backoff = evtimer_new(base, sess_on_backoff, m);
	m->ev_tick = event_new(base, -1, EV_PERSIST, sess_on_tick, m);
	m->ev_queued = event_new(base, -1, EV_PERSIST, sess_on_queued, m);
	event_add(m->ev_notify, NULL);
	if (m->sc->dwq != DWQ_OFF) {
		struct timeval tv = {SESS_QUEUED_EVERY_S, 0};
		event_add(m->ev_queued, &tv);
	}
	sess_startup_catch_up(m);
	sess_arm_slot(m);
	return m;
}

int sessions_busy(const struct sessions *m)
{
	return m->worker_running || m->cur != NULL;
}

void sessions_reconfigure(struct sessions *m)
{
	m->sc = m->cfg->session ? m->cfg->session : &m->defaults;
	if (m->sc->dwq == DWQ_OFF)
		event_del(m->ev_queued);
	else if (!event_pending(m->ev_queued, EV_TIMEOUT, NULL)) {
		struct timeval tv = {SESS_QUEUED_EVERY_S, 0};
		event_add(m->ev_queued, &tv);
	}
	if (!sessions_busy(m))
		sess_arm_slot(m);
}

/* Shutdown with a session in progress: stop the worker, hang up. */
static int sess_stop_worker(struct sessions *m)
{
	struct timespec until;

	if (!m->worker_running)
		return 0;
	if (write(m->cancel[1], "x", 1) < 0)
		log_warn("session: cancel");
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SESS_STOP_WAIT_S;
	if (pthread_timedjoin_np(m->worker, NULL, &until) != 0) {
		log_warnx("session: the dialer did not stop within %d s", SESS_STOP_WAIT_S);
		return -1;
	}
	m->worker_running = 0;
	return 0;
}

void sessions_free(struct sessions *m)
{
	struct dial_session *s;

	if (m == NULL)
		return;
	if (sess_stop_worker(m) < 0)
		return; /* the worker still uses m: leave it to the process exit */
	s = m->cur;
	if (s) {
		if (s->link && s->state != SS_HANGUP) {
			for (size_t i = 0; i < s->names.n; i++)
				delivery_link_down(m->delivery, s->names.v[i]);
		}
		if (s->link) {
			free(s->hangup_reason);
			s->hangup_reason = xstrdup("daemon stopping");
			link_down(s->link, s->hangup_reason);
			s->link = NULL;
			s->ok = 1;
		} else if (s->state != SS_HANGUP)
			sess_take_report(s);
		sess_finish(m);
	}
	event_free(m->ev_notify);
	event_free(m->ev_slot);
	event_free(m->ev_catchup);
	event_free(m->ev_backoff);
	event_free(m->ev_tick);
	event_free(m->ev_queued);
	close(m->notify[0]);
	close(m->notify[1]);
	close(m->cancel[0]);
	close(m->cancel[1]);
	strlist_free(&m->lines);
	pthread_mutex_destroy(&m->mu);
	schedule_free(&m->defaults.schedule);
	strlist_free(&m->defaults.entries);
	free(m->defaults.retrieve);
	free(m->dir);
	free(m);
}

int sessions_dial(struct sessions *m, const char *entry, const struct session_watch *w,
		  struct buf *why)
{
	struct sess_watcher *sw;

	if (m->cur == NULL) {
		struct dial_session *probe = sess_new(m, "dial command", 0, entry, why);
		if (probe == NULL)
			return -1;
		sess_free_session(probe);
	}
	sw = xcalloc(1, sizeof(*sw));
	sw->id = m->next_watch_id++;
	sw->w = *w;
	sw->next = m->watchers;
	m->watchers = sw;
	if (m->cur)
		sess_say(m, "a session is already in progress (%s); following it", m->cur->reason);
	else {
		event_del(m->ev_catchup);
		sess_start(m, m->owed ? "catch-up" : "dial command", m->owed, entry);
	}
	return sw->id;
}

void sessions_unwatch(struct sessions *m, int id)
{
	for (struct sess_watcher **p = &m->watchers; *p; p = &(*p)->next) {
		if ((*p)->id == id) {
			struct sess_watcher *w = *p;
			*p = w->next;
			free(w);
			return;
		}
	}
}

static const char *sess_state_name(const struct dial_session *s)
{
	if (s == NULL)
		return "down";
	switch (s->state) {
	case SS_DIALING:
		return "dialing";
	case SS_BACKOFF:
		return "waiting to redial";
	case SS_UP:
		return "up";
	case SS_HANGUP:
		return "hanging up";
	}
	return "unknown";
}

/* "recovering: 42000 of 100000" while the start-up recovery reads the
 * queue into the index (the counts above are still growing). */
static void sess_recovering(struct sessions *m, struct buf *out)
{
	struct q_recover_progress p;

	if (m->queue == NULL || !queue_recover_progress(m->queue, &p))
		return;
	if (p.listing)
		buf_printf(out, "recovering: listing the queue, %zu files so far\n", p.total);
	else
		buf_printf(out, "recovering: %zu of %zu\n", p.done, p.total);
}

void sessions_status(struct sessions *m, struct buf *out)
{
	struct dial_session *s = m->cur;
	struct sess_count c;
	struct strlist names = {0};
	char t1[64], t2[64];

	buf_printf(out, "link: %s", sess_state_name(s));
	if (s && s->state == SS_UP)
		buf_printf(out, " (%s %s%s)", link_entry(s->link)->name, link_connect_text(s->link),
			   s->phase == PH_OUTBOUND ? ", delivering" : "");
	if (s)
		buf_printf(out, "\nsession: %s, %d rounds, %zu failed attempts", s->reason,
			   s->rounds, s->n_failed);
	if (s && s->state == SS_UP)
		buf_printf(
		    out, "\nactivity: outbound %s, %d inbound SMTP sessions open, idle for %lld s",
		    sess_busy(m) ? "busy" : "idle", smtp_server_inbound_sessions(m->smtp),
		    (long long)((clock_usec() - s->last_activity_usec) / 1000000));
	clock_local(m->next_slot, t1, sizeof(t1));
	buf_printf(out, "\nschedule: %s\nnext slot: %s",
		   m->sc->schedule.n ? m->sc->schedule.text : "off", t1);
	clock_local(m->owed, t2, sizeof(t2));
	buf_printf(out, "\nowed slot: %s", t2);
	clock_local(m->last_end, t1, sizeof(t1));
	buf_printf(out, "\nlast session: %s%s",
		   m->last_end ? (m->last_ok ? "ok, ended " : "missed, ended ") : "", t1);
	sess_names(m, &names);
	sess_count(m, &names, &c);
	buf_printf(out, "\nqueue: %u messages, %u for the link\n", c.total, c.n);
	sess_recovering(m, out);
	strlist_free(&names);
}

static const char *sess_phase_name(const struct dial_session *s)
{
	if (s == NULL || s->state != SS_UP)
		return NULL;
	return s->phase == PH_OUTBOUND	 ? "outbound"
	       : s->phase == PH_RETRIEVE ? "retrieve"
					 : "linger";
}

void sessions_snapshot(struct sessions *m, struct session_snapshot *o)
{
	const struct dial_session *s = m->cur;

	memset(o, 0, sizeof(*o));
	o->link = sess_state_name(s);
	o->phase = sess_phase_name(s);
	o->schedule = m->sc->schedule.n ? m->sc->schedule.text : "off";
	if (s) {
		o->reason = s->reason;
		o->rounds = s->rounds;
		o->failed_attempts = s->n_failed;
		o->start_usec = s->start_usec;
		o->connect_usec = s->state == SS_UP ? s->connect_usec : 0;
		o->msgs_in = s->msgs_in;
		o->bytes_in = s->bytes_in;
		sess_stats(m, &o->msgs_out, &o->bytes_out);
	}
	if (s && s->state == SS_UP) {
		o->entry = link_entry(s->link)->name;
		o->connect = link_connect_text(s->link);
	}
	o->next_slot = m->next_slot;
	o->owed = m->owed;
	o->last_end = m->last_end;
	o->last_ok = m->last_ok;
	o->missed_in_a_row = m->catchup_k;
}

void sessions_summary(struct sessions *m, struct buf *out)
{
	struct strlist names = {0};
	struct sess_count c;
	char next[64];

	sess_names(m, &names);
	sess_count(m, &names, &c);
	clock_local(m->next_slot, next, sizeof(next));
	buf_printf(out, "link %s; queue %u message%s, %u for the link; next slot %s",
		   sess_state_name(m->cur), c.total, c.total == 1 ? "" : "s", c.n, next);
	strlist_free(&names);
}

void sessions_note_message(struct sessions *m, const char *qid)
{
	struct q_env env;

	if (m == NULL || m->cur == NULL || m->cur->state != SS_UP)
		return;
	memset(&env, 0, sizeof(env));
	m->cur->msgs_in++;
	if (queue_load_envelope(m->queue, qid, &env) == Q_OK)
		m->cur->bytes_in += env.size;
	q_env_free(&env);
}
