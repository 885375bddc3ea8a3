/* modemsim: main program, options, the pseudo-terminal line and the poll loop.
 * The master side stays open for the whole run; the dialer closing every slave
 * fd is the DTR drop (seen by inotify on the slave, or EIO on the master). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "modemsim.h"

#define MS_VERSION "modemsim 1.0"
#define MS_TICK	   20000 /* usec between checks of a closed line without inotify */

static volatile sig_atomic_t ms_stop;

static const char ms_usage[] =
    "usage: modemsim [--link PATH] [--script LIST | --fail-rate P [--seed N]]\n"
    "                [--fail-results LIST] [--wedge-after N] [--silent] [--garbage]\n"
    "                [--drop-after-bytes N] [--bps N] [--latency MS]\n"
    "                [--connect HOST:PORT] [--gateway-port PORT] [--connect-delay S]\n"
    "                [--answer-port PORT [--ring-interval MS] [--max-rings N]]\n"
    "                [--profile iridium|bgan|hf|v34] [--turnaround MS]\n"
    "                [--drop-random LO:HI [--drop-chance P]] [--transcript FILE]\n"
    "                [--reverse-gateway PORT:HOST:PORT]\n"
    "Prints the slave pty path on stdout, then emulates a Hayes modem on it.\n"
    "See modemsim(1).\n";

void ms_log(struct modem *m, const char *fmt, ...)
{
	char when[40];
	va_list ap;

	clock_iso8601(clock_usec(), when, sizeof(when));
	fprintf(m->tr, "%s ", when);
	va_start(ap, fmt);
	vfprintf(m->tr, fmt, ap);
	va_end(ap);
	fputc('\n', m->tr);
	fflush(m->tr);
}

/* Queues bytes for the dialer; nobody hears them while the line is closed. */
void ms_send(struct modem *m, const void *data, size_t len)
{
	if (m->line_open)
		buf_append(&m->out, data, len);
}

void ms_poll_add(struct ms_poll *p, int fd, short events, void (*cb)(struct modem *, void *, short),
		 void *arg)
{
	if (fd < 0 || p->n >= MS_MAXPOLL)
		return;
	p->pfd[p->n].fd = fd;
	p->pfd[p->n].events = events;
	p->pfd[p->n].revents = 0;
	p->cb[p->n] = cb;
	p->arg[p->n] = arg;
	p->n++;
}

void ms_poll_timer(struct ms_poll *p, int64_t when)
{
	if (when > 0 && (p->deadline == 0 || when < p->deadline))
		p->deadline = when;
}

/* splitmix64: small, and the same sequence for a seed on every machine. */
uint64_t ms_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Printable form of command text for the transcript: \r, \xNN escapes. */
void ms_quote(const char *s, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

/* ---- the pseudo-terminal line ------------------------------------------ */

static void pty_feed(struct modem *m, const char *data, size_t len)
{
	if (m->state == ST_ONLINE)
		call_pty_data(m, data, len);
	else
		at_input(m, data, len);
}

/* Reads what the dialer wrote; returns -1 once the master reports EIO. */
static int pty_read(struct modem *m)
{
	char data[4096];
	ssize_t n = read(m->master, data, sizeof(data));

	if (n > 0) {
		pty_feed(m, data, (size_t)n);
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return -1;
}

static void pty_opened(struct modem *m)
{
	m->line_open = true;
	m->out.len = 0;
	m->out_off = 0;
	ms_log(m, "line open");
}

/* The DTR drop: hang up, reset as AT&D3 would, advance a wedged modem.
 * Unread input belongs to the old session unless the line is open again
 * already (reopened): then it is the new session's first command. */
static void pty_closed(struct modem *m, bool reopened)
{
	if (!m->line_open)
		return;
	for (int i = 0; !reopened && i < 64 && pty_read(m) > 0; i++)
		;
	m->line_open = false;
	m->opens = 0;
	ms_log(m, "line closed (DTR drop)");
	if (m->wedge == WEDGE_DEAD) {
		m->wedge = WEDGE_WANT_ATZ;
		ms_log(m, "wedge: DTR drop seen, waiting for ATZ");
	}
	if (m->state == ST_DIALING)
		call_abort(m, "dtr");
	else if (m->state != ST_COMMAND)
		call_hangup(m, "dtr");
	at_reset(m);
	m->linelen = 0;
	m->overflow = false;
	buf_reset(&m->out);
	m->out_off = 0;
	tcflush(m->master, reopened ? TCOFLUSH : TCIOFLUSH);
	m->gen++;
}

/* True if an IN_OPEN follows p in the batch ending at end. */
static bool pty_open_follows(const char *p, const char *end)
{
	while (p < end) {
		const struct inotify_event *e = (const struct inotify_event *)p;
		if (e->mask & IN_OPEN)
			return true;
		p += sizeof(*e) + e->len;
	}
	return false;
}

/* inotify events on the slave device: count opens against closes. */
static void pty_inotify(struct modem *m, void *arg, short revents)
{
	char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(m->ino_fd, ev, sizeof(ev))) > 0) {
		for (char *p = ev; p < ev + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			p += sizeof(*e) + e->len;
			if (e->mask & IN_OPEN) {
				m->opens++;
				if (!m->line_open)
					pty_opened(m);
			}
			if ((e->mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)) && --m->opens <= 0)
				pty_closed(m, pty_open_follows(p, ev + n));
		}
	}
}

static bool pty_hangup_now(struct modem *m)
{
	struct pollfd pfd = {.fd = m->master, .events = POLLIN};

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP);
}

static void pty_write(struct modem *m)
{
	ssize_t n;

	if (m->out_off >= m->out.len)
		return;
	n = write(m->master, m->out.data + m->out_off, m->out.len - m->out_off);
	if (n > 0)
		m->out_off += (size_t)n;
	if (m->out_off >= m->out.len) {
		buf_reset(&m->out);
		m->out_off = 0;
	}
}

static void pty_event(struct modem *m, void *arg, short revents)
{
	if (revents & POLLIN) {
		if (pty_read(m) < 0)
			revents |= POLLHUP;
	}
	if ((revents & POLLOUT) && m->line_open)
		pty_write(m);
	if (!(revents & (POLLHUP | POLLERR)) || !m->line_open)
		return;
	/* The close event is queued before the master sees the hangup. */
	if (m->ino_fd >= 0)
		pty_inotify(m, NULL, POLLIN);
	if (m->line_open && pty_hangup_now(m))
		pty_closed(m, false);
}

static void pty_prepare(struct modem *m, struct ms_poll *p)
{
	if (m->ino_fd >= 0)
		ms_poll_add(p, m->ino_fd, POLLIN, pty_inotify, NULL);
	if (m->line_open) {
		short ev = (m->out_off < m->out.len) ? POLLOUT : 0;
		if (!(m->state == ST_ONLINE && call_pty_blocked(m)))
			ev |= POLLIN;
		ms_poll_add(p, m->master, ev, pty_event, NULL);
	} else if (m->ino_fd < 0) {
		ms_poll_timer(p, m->tick);
	}
}

/* Without inotify a closed line is re-checked every MS_TICK. */
static void pty_timers(struct modem *m)
{
	int64_t now = clock_usec();

	if (m->line_open || m->ino_fd >= 0 || now < m->tick)
		return;
	m->tick = now + MS_TICK;
	if (!pty_hangup_now(m))
		pty_opened(m);
}

static int pty_setup(struct modem *m)
{
	struct termios t;
	int slave;

	if (openpty(&m->master, &slave, m->slave, NULL, NULL) < 0) {
		log_warn("openpty");
		return -1;
	}
	/* On Linux the master's termios calls reach the slave: start raw, no echo. */
	if (tcgetattr(slave, &t) == 0) {
		cfmakeraw(&t);
		t.c_cflag |= CLOCAL | CREAD | HUPCL;
		tcsetattr(slave, TCSANOW, &t);
	}
	close(slave);
	fcntl(m->master, F_SETFL, fcntl(m->master, F_GETFL) | O_NONBLOCK);
	fcntl(m->master, F_SETFD, FD_CLOEXEC);
	m->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (m->ino_fd >= 0 && inotify_add_watch(m->ino_fd, m->slave,
						IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE) < 0) {
		log_warn("inotify on %s (falling back to EIO polling)", m->slave);
		close(m->ino_fd);
		m->ino_fd = -1;
	}
	return 0;
}

/* ---- --link ------------------------------------------------------------- */

/* Points PATH at the slave atomically; refuses to replace a non-symlink. */
static int link_create(const char *path, const char *target)
{
	struct stat st;
	char *tmp;

	if (lstat(path, &st) == 0 && !S_ISLNK(st.st_mode)) {
		log_warnx("%s exists and is not a symlink; not replacing it", path);
		return -1;
	}
	tmp = xasprintf("%s.modemsim-%ld", path, (long)getpid());
	unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, path) < 0) {
		log_warn("symlink %s -> %s", path, target);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

/* Removes PATH only if it still points at our slave. */
static void link_remove(const char *path, const char *target)
{
	char cur[PATH_MAX];
	ssize_t n = readlink(path, cur, sizeof(cur) - 1);

	if (n < 0)
		return;
	cur[n] = '\0';
	if (strcmp(cur, target) == 0)
		unlink(path);
}

/* ---- options -------------------------------------------------------------- */

static int opt_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int opt_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

/* Comma-separated outcomes: "BUSY, NO CARRIER, CONNECT 9600, DROP:500". */
static int opt_list(const char *s, struct ms_outcome *list, int *n)
{
	char *copy = xstrdup(s), *save = NULL, *tok;
	int rc = 0;

	*n = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n >= MS_MAXLIST || at_parse_outcome(tok, &list[*n]) < 0) {
			log_warnx("bad result list entry '%s' in '%s'", tok, s);
			rc = -1;
			break;
		}
		(*n)++;
	}
	free(copy);
	return rc;
}

static int opt_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *name,
		    size_t namelen);

/* HOST:PORT or [V6]:PORT, resolved once at start so calls never wait on DNS. */
static int opt_target(const char *s, struct ms_opts *o)
{
	if (opt_addr(s, &o->target, &o->target_len, o->target_name, sizeof(o->target_name)) < 0)
		return -1;
	o->have_target = true;
	return 0;
}

/* PORT:HOST:PORT: the far-side port, then where its connections go. */
static int opt_reverse(const char *s, struct ms_opts *o)
{
	char *end;
	long port = strtol(s, &end, 10);

	if (end == s || *end != ':' || port < 1 || port > 65535)
		return -1;
	o->reverse_port = (int)port;
	return opt_addr(end + 1, &o->rtarget, &o->rtarget_len, o->rtarget_name,
			sizeof(o->rtarget_name));
}

static int opt_addr(const char *s, struct sockaddr_storage *ss, socklen_t *sslen, char *name,
		    size_t namelen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char host[256];
	const char *port;
	size_t hl;
	int rc;

	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (!e || e[1] != ':')
			return -1;
		hl = (size_t)(e - s - 1);
		memcpy(host, s + 1, hl < sizeof(host) ? hl : 0);
		port = e + 2;
	} else {
		port = strrchr(s, ':');
		if (!port)
			return -1;
		hl = (size_t)(port - s);
		port++;
		memcpy(host, s, hl < sizeof(host) ? hl : 0);
	}
	if (hl == 0 || hl >= sizeof(host) || !*port)
		return -1;
	host[hl] = '\0';
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || !res) {
		log_warnx("--connect %s: %s", s, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	snprintf(name, namelen, "%s", s);
	freeaddrinfo(res);
	return 0;
}

enum {
	OPT_LINK = 256,
	OPT_SCRIPT,
	OPT_FAIL_RATE,
	OPT_SEED,
	OPT_FAIL_RESULTS,
	OPT_WEDGE_AFTER,
	OPT_SILENT,
	OPT_GARBAGE,
	OPT_DROP,
	OPT_BPS,
	OPT_LATENCY,
	OPT_CONNECT,
	OPT_GATEWAY,
	OPT_DELAY,
	OPT_TRANSCRIPT,
	OPT_VERSION,
	OPT_ANSWER,
	OPT_RING_INTERVAL,
	OPT_MAX_RINGS,
	OPT_PROFILE,
	OPT_TURNAROUND,
	OPT_DROP_RANDOM,
	OPT_DROP_CHANCE,
	OPT_REVERSE,
};

static const struct option ms_options[] = {
    {"link", required_argument, NULL, OPT_LINK},
    {"script", required_argument, NULL, OPT_SCRIPT},
    {"fail-rate", required_argument, NULL, OPT_FAIL_RATE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"fail-results", required_argument, NULL, OPT_FAIL_RESULTS},
    {"wedge-after", required_argument, NULL, OPT_WEDGE_AFTER},
    {"silent", no_argument, NULL, OPT_SILENT},
    {"garbage", no_argument, NULL, OPT_GARBAGE},
    {"drop-after-bytes", required_argument, NULL, OPT_DROP},
    {"bps", required_argument, NULL, OPT_BPS},
    {"latency", required_argument, NULL, OPT_LATENCY},
    {"connect", required_argument, NULL, OPT_CONNECT},
    {"gateway-port", required_argument, NULL, OPT_GATEWAY},
    {"connect-delay", required_argument, NULL, OPT_DELAY},
    {"transcript", required_argument, NULL, OPT_TRANSCRIPT},
    {"version", no_argument, NULL, OPT_VERSION},
    {"answer-port", required_argument, NULL, OPT_ANSWER},
    {"ring-interval", required_argument, NULL, OPT_RING_INTERVAL},
    {"max-rings", required_argument, NULL, OPT_MAX_RINGS},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"turnaround", required_argument, NULL, OPT_TURNAROUND},
    {"drop-random", required_argument, NULL, OPT_DROP_RANDOM},
    {"drop-chance", required_argument, NULL, OPT_DROP_CHANCE},
    {"reverse-gateway", required_argument, NULL, OPT_REVERSE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* LO:HI, two byte counts with LO <= HI. */
static int opt_range(const char *s, long long *lo, long long *hi)
{
	char *end, *mid;

	errno = 0;
	*lo = strtoll(s, &mid, 10);
	if (errno || mid == s || *mid != ':' || *lo < 0)
		return -1;
	*hi = strtoll(mid + 1, &end, 10);
	if (errno || end == mid + 1 || *end || *hi < *lo)
		return -1;
	return 0;
}

/* The options added with the link profiles. */
static int opt_link(struct ms_opts *o, int c, const char *arg)
{
	switch (c) {
	case OPT_PROFILE:
		o->profile = arg;
		return profile_find(arg) ? 0 : -1;
	case OPT_TURNAROUND:
		return opt_long(arg, 0, 60000, &o->turnaround_ms);
	case OPT_DROP_RANDOM:
		return opt_range(arg, &o->drop_lo, &o->drop_hi);
	case OPT_DROP_CHANCE:
		return opt_double(arg, 0.0, 1.0, &o->drop_chance);
	case OPT_REVERSE:
		return opt_reverse(arg, o);
	}
	return -1;
}

/* Which line setting an option sets, for the profile to leave alone. */
static unsigned opt_given(int c)
{
	return c == OPT_BPS	     ? MS_GIVEN_BPS
	       : c == OPT_LATENCY    ? MS_GIVEN_LATENCY
	       : c == OPT_DELAY	     ? MS_GIVEN_DELAY
	       : c == OPT_TURNAROUND ? MS_GIVEN_TURNAROUND
				     : 0;
}

static int opt_one(struct ms_opts *o, int c, const char *arg, bool *have_seed)
{
	long v;

	switch (c) {
	case OPT_LINK:
		o->link = arg;
		return 0;
	case OPT_SCRIPT:
		return opt_list(arg, o->script, &o->nscript);
	case OPT_FAIL_RATE:
		return opt_double(arg, 0.0, 1.0, &o->fail_rate);
	case OPT_SEED: {
		char *end;
		errno = 0;
		o->seed = strtoull(arg, &end, 0);
		*have_seed = true;
		return (errno || end == arg || *end) ? -1 : 0;
	}
	case OPT_FAIL_RESULTS:
		return opt_list(arg, o->pool, &o->npool) < 0 || o->npool == 0 ? -1 : 0;
	case OPT_WEDGE_AFTER:
		return opt_long(arg, 0, LONG_MAX, &o->wedge_after);
	case OPT_SILENT:
		o->silent = true;
		return 0;
	case OPT_GARBAGE:
		o->garbage = true;
		return 0;
	case OPT_DROP:
		if (opt_long(arg, 0, LONG_MAX, &v) < 0)
			return -1;
		o->drop_after = v;
		return 0;
	case OPT_BPS:
		return opt_long(arg, 10, 100000000, &o->bps);
	case OPT_LATENCY:
		return opt_long(arg, 0, 600000, &o->latency_ms);
	case OPT_CONNECT:
		return opt_target(arg, o);
	case OPT_GATEWAY:
		if (opt_long(arg, 1, 65535, &v) < 0)
			return -1;
		o->gateway_port = (int)v;
		return 0;
	case OPT_DELAY:
		return opt_double(arg, 0.0, 3600.0, &o->connect_delay);
	case OPT_TRANSCRIPT:
		o->transcript = arg;
		return 0;
	case OPT_ANSWER:
		if (opt_long(arg, 1, 65535, &v) < 0)
			return -1;
		o->answer_port = (int)v;
		return 0;
	case OPT_RING_INTERVAL:
		return opt_long(arg, 10, 60000, &o->ring_interval_ms);
	case OPT_MAX_RINGS:
		return opt_long(arg, 1, 1000, &o->max_rings);
	}
	return opt_link(o, c, arg);
}

static int opts_parse(struct ms_opts *o, int argc, char **argv)
{
	bool have_seed = false;
	unsigned given = 0;
	int c;

	o->bps = 33600;
	o->drop_after = -1;
	o->drop_hi = -1;
	o->drop_chance = 1.0;
	o->ring_interval_ms = 6000;
	o->max_rings = 10;
	at_parse_outcome("BUSY", &o->pool[0]);
	at_parse_outcome("NO CARRIER", &o->pool[1]);
	at_parse_outcome("NO ANSWER", &o->pool[2]);
	o->npool = 3;
	while ((c = getopt_long(argc, argv, "h", ms_options, NULL)) != -1) {
		if (c == 'h') {
			fputs(ms_usage, stdout);
			exit(0);
		}
		if (c == OPT_VERSION) {
			puts(MS_VERSION);
			exit(0);
		}
		if (c == '?' || opt_one(o, c, optarg, &have_seed) < 0) {
			if (c != '?')
				log_warnx("bad value for --%s: %s", ms_options[c - OPT_LINK].name,
					  optarg);
			fputs(ms_usage, stderr);
			return -1;
		}
		given |= opt_given(c);
	}
	if (o->profile)
		profile_apply(o, profile_find(o->profile), given);
	if (optind < argc) {
		log_warnx("unexpected argument %s", argv[optind]);
		return -1;
	}
	if (o->gateway_port && o->answer_port) {
		log_warnx("--gateway-port and --answer-port do not go together");
		return -1;
	}
	if (o->reverse_port && !o->gateway_port) {
		log_warnx("--reverse-gateway goes with --gateway-port (IP over the call)");
		return -1;
	}
	if (o->gateway_port && !o->have_target) {
		log_warnx(
		    "--gateway-port needs --connect HOST:PORT (where relayed connections go)");
		return -1;
	}
	if (!have_seed)
		o->seed = (uint64_t)clock_usec() ^ ((uint64_t)getpid() << 32);
	return 0;
}

/* ---- main loop ------------------------------------------------------------ */

static void ms_on_signal(int sig)
{
	ms_stop = sig;
}

static int ms_signals(sigset_t *waitmask)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = ms_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	/* Blocked except inside ppoll(), so a signal cannot slip between checks. */
	return sigprocmask(SIG_BLOCK, &block, waitmask);
}

static void ms_turn(struct modem *m, const sigset_t *waitmask)
{
	struct ms_poll p;
	struct timespec ts, *tsp = NULL;
	unsigned gen;
	int n;

	p.n = 0;
	p.deadline = 0;
	pty_prepare(m, &p);
	call_prepare(m, &p);
	answer_prepare(m, &p);
	if (p.deadline) {
		int64_t wait = p.deadline - clock_usec();
		if (wait < 0)
			wait = 0;
		ts.tv_sec = wait / 1000000;
		ts.tv_nsec = (wait % 1000000) * 1000;
		tsp = &ts;
	}
	n = ppoll(p.pfd, (nfds_t)p.n, tsp, waitmask);
	if (n < 0 && errno != EINTR)
		fatal("ppoll");
	gen = m->gen;
	for (int i = 0; n > 0 && i < p.n && gen == m->gen; i++) {
		if (p.pfd[i].revents)
			p.cb[i](m, p.arg[i], p.pfd[i].revents);
	}
	call_timers(m);
	answer_timers(m);
	pty_timers(m);
}

static void ms_start_log(struct modem *m)
{
	char script[64] = "";

	if (m->o.nscript)
		snprintf(script, sizeof(script), " script=%d", m->o.nscript);
	ms_log(m,
	       "start pty=%s link=%s profile=%s bps=%ld latency=%ld turnaround=%ld "
	       "connect_delay=%g seed=%llu fail_rate=%g%s "
	       "wedge_after=%ld connect=%s gateway_port=%d answer_port=%d",
	       m->slave, m->o.link ? m->o.link : "-", m->o.profile ? m->o.profile : "-", m->o.bps,
	       m->o.latency_ms, m->o.turnaround_ms, m->o.connect_delay,
	       (unsigned long long)m->o.seed, m->o.fail_rate, script, m->o.wedge_after,
	       m->o.have_target ? m->o.target_name : "-", m->o.gateway_port, m->o.answer_port);
}

int main(int argc, char **argv)
{
	static struct modem modem;
	struct modem *m = &modem;
	sigset_t waitmask;

	log_init("modemsim", 1, 0);
	if (opts_parse(&m->o, argc, argv) < 0)
		return 2;
	m->rng = m->o.seed;
	m->noise_rng = m->o.seed ^ 0x5deece66dULL;
	m->drop_rng = m->o.seed ^ 0x2545f4914f6cdd1dULL;
	m->call.listen_fd = -1;
	m->call.rlisten_fd = -1;
	m->call.remote.fd = -1;
	at_reset(m);
	if (ms_signals(&waitmask) < 0 || pty_setup(m) < 0)
		return 1;
	if (answer_listen(m) < 0) {
		log_warn("--answer-port %d", m->o.answer_port);
		return 1;
	}
	m->tr = stdout;
	if (m->o.transcript && !(m->tr = fopen(m->o.transcript, "a"))) {
		log_warn("open %s", m->o.transcript);
		return 1;
	}
	if (m->o.link && link_create(m->o.link, m->slave) < 0)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("%s\n", m->slave);
	fflush(stdout);
	ms_start_log(m);
	while (!ms_stop)
		ms_turn(m, &waitmask);
	if (m->state == ST_DIALING)
		call_abort(m, "exit");
	else if (m->state != ST_COMMAND)
		call_hangup(m, "exit");
	ms_log(m, "exit signal=%d", (int)ms_stop);
	if (m->o.link)
		link_remove(m->o.link, m->slave);
	return 0;
}
