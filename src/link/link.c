/* The attempt engine behind link.h: for each entry, each number, up to
 * redial_attempts calls; transient causes redial, modem trouble recovers the
 * modem and retries, configuration causes skip the entry for this window.
 * Invariant: every failed attempt produces exactly one 4106 event whose text
 * carries the cause in words, and link_up never outlives its round. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail/event.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "link/link.h"
#include "link/modem.h"

#define LINK_MAX_MODEM_TROUBLE 2    /* consecutive modem troubles before giving up an entry */
#define LINK_PPP_SETTLE_MS     3000 /* pppd without ppp_up_file: up once it ran this long */
#define LINK_CHECK_EVERY_MS    500  /* type command: pause between check runs */

struct link {
	const struct phonebook_entry *e;
	struct modem m;
	int have_modem;
	pid_t pppd; /* data = ppp: the pppd child, 0 if none */
	char number[64];
	int64_t start_usec;
	pid_t check_pid;	  /* type = command: a liveness check running, 0 if none */
	long long check_deadline; /* clock_mono_ms() after which it is killed */
	long long check_next;	  /* clock_mono_ms() when the next check may start */
};

/* The state of one round. */
struct engine {
	const struct link_opts *o;
	struct link_report *rep;
};

/* What the engine does after a failure, in words for the event. */
enum next_step { NEXT_REDIAL, NEXT_NUMBER, NEXT_ENTRY, NEXT_RECOVER, NEXT_SKIP };

static int link_hold_ms(const struct engine *g)
{
	return g->o->dtr_hold_ms > 0 ? g->o->dtr_hold_ms : 500;
}

static void link_progress(const struct engine *g, const char *text)
{
	if (g->o->progress)
		g->o->progress(g->o->arg, text);
}

static void link_event(const struct engine *g, int id, const char *const *kv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes an event and hands the same text to the progress hook. */
static void link_event(const struct engine *g, int id, const char *const *kv, const char *fmt, ...)
{
	struct buf text = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	event_logkv(id, kv, "%s", buf_cstr(&text));
	if (g)
		link_progress(g, buf_cstr(&text));
	buf_free(&text);
}

/* 0 when there is time left for ms more; -1 when the window closes first. */
static int link_time_left(const struct engine *g, int ms)
{
	if (g->o->deadline_usec == 0)
		return 0;
	return clock_usec() + (int64_t)ms * 1000 < g->o->deadline_usec ? 0 : -1;
}

/* The pause between attempts; -1 when the round must stop. */
static int link_pause(struct engine *g, int ms)
{
	if (link_time_left(g, ms) < 0) {
		g->rep->window_closed = 1;
		return -1;
	}
	if (g->o->pause) {
		if (g->o->pause(g->o->arg, ms) != 0) {
			g->rep->window_closed = 1;
			return -1;
		}
	} else if (ms > 0)
		clock_sleep_ms(ms);
	return 0;
}

static const char *link_next_words(enum next_step next, int interval_ms, char *out, size_t len)
{
	switch (next) {
	case NEXT_REDIAL:
		snprintf(out, len, "redialling in %d.%ds", interval_ms / 1000,
			 (interval_ms % 1000) / 100);
		break;
	case NEXT_NUMBER:
		snprintf(out, len, "trying the next number");
		break;
	case NEXT_ENTRY:
		snprintf(out, len, "trying the next entry");
		break;
	case NEXT_RECOVER:
		snprintf(out, len, "recovering the modem");
		break;
	case NEXT_SKIP:
		snprintf(out, len, "not dialing this entry again this window");
		break;
	}
	return out;
}

/* Records and logs one failed attempt (event 4106). */
static void link_failed(struct engine *g, const struct phonebook_entry *e, const char *number,
			int n, int of, const struct cause *c, enum next_step next)
{
	struct link_report *rep = g->rep;
	struct link_attempt *a;
	struct buf words = BUF_INIT, where = BUF_INIT;
	char nbuf[16], nextw[64];
	const char *kv[] = {"entry",   e->name,
			    "number",  number[0] ? number : NULL,
			    "attempt", nbuf,
			    "cause",   cause_name(c->id),
			    "class",   cause_class_name(cause_class(c->id)),
			    NULL};

	rep->v = xrealloc(rep->v, (rep->n + 1) * sizeof(*rep->v));
	a = &rep->v[rep->n++];
	a->entry = xstrdup(e->name);
	a->number = xstrdup(number);
	a->n = n;
	a->of = of;
	a->cause = *c;
	a->at_usec = clock_usec();
	snprintf(nbuf, sizeof(nbuf), "%d", n);
	cause_describe(c, &words);
	if (number[0])
		buf_printf(&where, "number %s, ", number);
	buf_printf(&where, "attempt %d of %d", n, of);
	link_event(g, EV_DIALUP_FAILED, kv,
		   "The dial-up connection '%s' could not be made: %s: %s [%s]; %s", e->name,
		   buf_cstr(&where), buf_cstr(&words), cause_class_name(cause_class(c->id)),
		   link_next_words(next, e->redial_interval_ms, nextw, sizeof(nextw)));
	buf_free(&words);
	buf_free(&where);
}

static void link_skipped(struct engine *g, const struct phonebook_entry *e, const struct cause *c)
{
	struct buf words = BUF_INIT;
	const char *kv[] = {"entry", e->name, "cause", cause_name(c->id), NULL};

	cause_describe(c, &words);
	link_event(g, EV_DIALUP_ENTRY_SKIPPED, kv,
		   "Phone book entry '%s' is not dialed again in this window: %s (%s); trying "
		   "alternates",
		   e->name, buf_cstr(&words), cause_class_name(cause_class(c->id)));
	buf_free(&words);
}

static void link_dialing(struct engine *g, const struct phonebook_entry *e, const char *number,
			 int n, int of, int after_recovery)
{
	char nbuf[16];
	const char *kv[] = {"entry",   e->name, "number", number[0] ? number : NULL,
			    "attempt", nbuf,	NULL};

	snprintf(nbuf, sizeof(nbuf), "%d", n);
	if (number[0])
		link_event(g, EV_DIALUP_DIALING, kv,
			   "Dialing phone book entry '%s': number %s, attempt %d of %d%s", e->name,
			   number, n, of, after_recovery ? " (after modem recovery)" : "");
	else
		link_event(g, EV_DIALUP_DIALING, kv,
			   "Bringing up phone book entry '%s' (%s link), attempt %d of %d", e->name,
			   phonebook_type_name(e->type), n, of);
}

/* --- child processes (pppd, link commands) ------------------------------ */

/* Starts argv (or "sh -c cmd" when argv is NULL) with io as stdin and stdout
 * (-1: /dev/null) and out_fd as stderr (and stdout when io is -1). */
static pid_t link_spawn(char *const *argv, const char *cmd, int io, int out_fd)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	setpgid(0, 0);
	int null = open("/dev/null", O_RDWR);
	dup2(io >= 0 ? io : null, 0);
	dup2(io >= 0 ? io : (out_fd >= 0 ? out_fd : null), 1);
	dup2(out_fd >= 0 ? out_fd : null, 2);
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	signal(SIGPIPE, SIG_DFL);
	if (argv)
		execv(argv[0], argv);
	else
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
}

/* Stops a child and its process group: SIGTERM, up to 3 s, then SIGKILL. */
static int link_reap(pid_t pid)
{
	int status = 0;

	kill(-pid, SIGTERM);
	kill(pid, SIGTERM);
	for (int i = 0; i < 60; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		clock_sleep_ms(50);
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return status;
}

/* The last non-empty line of a command's output, for the cause words. */
static void link_last_line(const struct buf *out, char *words, size_t len)
{
	const char *s = out->data ? out->data : "";
	const char *end = s + out->len, *start;

	while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	start = end;
	while (start > s && start[-1] != '\n')
		start--;
	snprintf(words, len, "%.*s", (int)(end - start), start);
}

/* A finished command's wait status as a cause: 0 for exit 0, else -1 with c
 * set (signal, not found, exit status; last: its last line of output). */
static int link_status_cause(const char *cmd, int status, const char *last, struct cause *c)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status)) {
		cause_set(c, CAUSE_CMD_SIGNAL, last);
		c->code = WTERMSIG(status);
	} else if (WEXITSTATUS(status) == 126 || WEXITSTATUS(status) == 127) {
		cause_set(c, CAUSE_CMD_NOT_FOUND, last[0] ? last : cmd);
	} else {
		cause_set(c, CAUSE_CMD_EXIT, last);
		c->code = WEXITSTATUS(status);
	}
	return -1;
}

/* Runs "sh -c cmd" within timeout_ms; 0 on exit 0, else -1 with c set to
 * the exit status, signal, not-found or timeout, with its last output line. */
static int link_run(const char *cmd, int io, int timeout_ms, struct cause *c)
{
	int pfd[2], status = 0;
	struct buf out = BUF_INIT;
	long long deadline = clock_mono_ms() + timeout_ms;
	pid_t pid;
	char last[100];

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		cause_set(c, CAUSE_CMD_EXIT, strerror(errno));
		c->code = -1;
		return -1;
	}
	pid = link_spawn(NULL, cmd, io, pfd[1]);
	close(pfd[1]);
	for (;;) {
		struct pollfd p = {pfd[0], POLLIN, 0};
		long long left = deadline - clock_mono_ms();
		char data[512];
		ssize_t n;

		if (left <= 0)
			break;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = read(pfd[0], data, sizeof(data));
		if (n <= 0)
			break; /* the command closed its output: it has ended (or daemonised) */
		if (out.len < 4096)
			buf_append(&out, data, (size_t)n);
	}
	close(pfd[0]);
	while (waitpid(pid, &status, WNOHANG) == 0 && clock_mono_ms() < deadline)
		clock_sleep_ms(10);
	link_last_line(&out, last, sizeof(last));
	buf_free(&out);
	if (waitpid(pid, &status, WNOHANG) == 0) {
		link_reap(pid);
		cause_set(c, CAUSE_CMD_TIMEOUT, NULL);
		snprintf(c->words, sizeof(c->words), "'%.60s' ran longer than %d ms", cmd,
			 timeout_ms);
		return -1;
	}
	return link_status_cause(cmd, status, last, c);
}

/* --- data phase ------------------------------------------------------- */

/* pppd argv: PPPD nodetach OPTIONS... [ipparam UPFILE] */
static char **link_pppd_argv(const struct phonebook_entry *e)
{
	struct strlist opts = {0};
	char **argv;
	size_t n = 0;

	strlist_split(&opts, e->ppp_options);
	argv = xcalloc(opts.n + 5, sizeof(char *));
	argv[n++] = xstrdup(e->pppd);
	argv[n++] = xstrdup("nodetach");
	for (size_t i = 0; i < opts.n; i++)
		argv[n++] = xstrdup(opts.v[i]);
	if (e->ppp_up_file[0]) {
		argv[n++] = xstrdup("ipparam");
		argv[n++] = xstrdup(e->ppp_up_file);
	}
	strlist_free(&opts);
	return argv;
}

static void link_argv_free(char **argv)
{
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* Runs pppd on the connected line and waits for its ip-up signal: the
 * ppp_up_file appearing (an ip-up script touches "$6", the ipparam), or,
 * without one, pppd still running after a settle time. */
static int link_ppp(struct link *l, struct cause *c)
{
	const struct phonebook_entry *e = l->e;
	char **argv = link_pppd_argv(e);
	long long start = clock_mono_ms();
	int status;

	if (e->ppp_up_file[0])
		unlink(e->ppp_up_file);
	if (access(argv[0], X_OK) < 0) {
		cause_set(c, CAUSE_PPP_NO_START, NULL);
		snprintf(c->words, sizeof(c->words), "%.80s: %s", argv[0], strerror(errno));
		link_argv_free(argv);
		return -1;
	}
	l->pppd = link_spawn(argv, NULL, l->m.port.fd, -1);
	link_argv_free(argv);
	for (;;) {
		long long ran = clock_mono_ms() - start;
		pid_t r = waitpid(l->pppd, &status, WNOHANG);

		if (r == l->pppd) {
			l->pppd = 0;
			if (WIFSIGNALED(status)) {
				cause_set(c, CAUSE_PPP_SIGNAL, strsignal(WTERMSIG(status)));
				c->code = 5;
			} else {
				cause_set(c, cause_from_pppd(WEXITSTATUS(status)), NULL);
				c->code = WEXITSTATUS(status);
				if (c->id == CAUSE_OK)
					cause_set(c, CAUSE_CARRIER_LOST, "pppd ended at once");
			}
			return -1;
		}
		if (e->ppp_up_file[0] ? access(e->ppp_up_file, F_OK) == 0
				      : ran >= LINK_PPP_SETTLE_MS)
			return 0;
		if (ran >= e->up_timeout_ms) {
			link_reap(l->pppd);
			l->pppd = 0;
			cause_set(c, CAUSE_PPP_UP_TIMEOUT, NULL);
			return -1;
		}
		clock_sleep_ms(50);
	}
}

static int link_data_phase(struct link *l, struct cause *c)
{
	switch (l->e->data) {
	case PB_DATA_NONE:
	case PB_DATA_DIRECT:
		return 0;
	case PB_DATA_PPP:
		return link_ppp(l, c);
	case PB_DATA_COMMAND:
		return link_run(l->e->up, l->m.port.fd, l->e->up_timeout_ms, c);
	}
	return 0;
}

/* The caller's mail-path check, if any. */
static int link_check_path(struct engine *g, const struct phonebook_entry *e, struct cause *c)
{
	struct buf why = BUF_INIT;
	int rc = 0;

	if (g->o->check && g->o->check(g->o->arg, e->name, &why) < 0) {
		cause_set(c, CAUSE_LINK_CHECK, buf_cstr(&why));
		rc = -1;
	}
	buf_free(&why);
	return rc;
}

static struct link *link_new(const struct phonebook_entry *e, const char *number)
{
	struct link *l = xcalloc(1, sizeof(*l));

	l->e = e;
	l->m.port.fd = -1;
	snprintf(l->number, sizeof(l->number), "%s", number);
	l->start_usec = clock_usec();
	return l;
}

static void link_connected(struct engine *g, struct link *l)
{
	char speed[16];
	const char *kv[] = {"entry", l->e->name, "number", l->number[0] ? l->number : NULL,
			    "speed", speed,	 NULL};

	snprintf(speed, sizeof(speed), "%d", l->m.speed);
	if (l->e->type == PB_MODEM)
		link_event(g, EV_DIALUP_CONNECTED, kv,
			   "The dial-up connection '%s' was established: number %s, %s (%d bps), "
			   "data phase %s",
			   l->e->name, l->number, l->m.connect, l->m.speed,
			   phonebook_data_name(l->e->data));
	else
		link_event(g, EV_DIALUP_CONNECTED, kv,
			   "The dial-up connection '%s' was established (%s link)", l->e->name,
			   phonebook_type_name(l->e->type));
}

/* Stops the data phase of a failed call and hangs the modem up. */
static void link_abort_call(struct engine *g, struct link *l)
{
	struct cause ignored;

	if (l->pppd) {
		link_reap(l->pppd);
		l->pppd = 0;
	}
	if (l->m.connect[0])
		modem_hangup(&l->m, link_hold_ms(g), &ignored);
}

/* --- type = modem -------------------------------------------------------- */

/* Recovery after modem trouble, with its event; 0 when the modem answers. */
static int link_recover(struct engine *g, struct link *l, const struct cause *why)
{
	struct cause c = {0};
	struct buf words = BUF_INIT;
	int rc;

	g->rep->recoveries++;
	cause_describe(why, &words);
	rc = modem_recover(&l->m, link_hold_ms(g), &c);
	if (rc == 0) {
		const char *kv[] = {"entry", l->e->name, "result", "recovered", NULL};
		g->rep->recoveries_ok++;
		link_event(g, EV_DIALUP_RECOVERY, kv,
			   "Modem of phone book entry '%s' (%s) recovered after %s: DTR dropped, "
			   "device reopened, init answered OK",
			   l->e->name, l->e->device, buf_cstr(&words));
	} else {
		struct buf now = BUF_INIT;
		const char *kv[] = {"entry", l->e->name, "result", "failed", NULL};
		cause_describe(&c, &now);
		link_event(g, EV_DIALUP_RECOVERY, kv,
			   "Modem of phone book entry '%s' (%s) could not be recovered after %s: "
			   "DTR dropped and device reopened, but %s",
			   l->e->name, l->e->device, buf_cstr(&words), buf_cstr(&now));
		buf_free(&now);
	}
	buf_free(&words);
	return rc;
}

/* One call: init, dial, data phase, mail-path check. 0 when up. */
static int link_call(struct engine *g, struct link *l, const char *number, struct cause *c)
{
	snprintf(l->number, sizeof(l->number), "%s", number);
	if (modem_init(&l->m, c) < 0 || modem_dial(&l->m, number, c) < 0)
		return -1;
	link_progress(g, l->m.connect);
	if (link_data_phase(l, c) < 0 || link_check_path(g, l->e, c) < 0) {
		link_abort_call(g, l);
		return -1;
	}
	return 0;
}

/* After a failed call: what next, given the class and where we are. */
static enum next_step link_decide(const struct cause *c, int k, int of, int last_number,
				  int troubles)
{
	switch (cause_class(c->id)) {
	case CC_CONFIG:
		return NEXT_SKIP;
	case CC_MODEM:
		return troubles >= LINK_MAX_MODEM_TROUBLE ? NEXT_ENTRY : NEXT_RECOVER;
	default:
		break;
	}
	if (k < of)
		return NEXT_REDIAL;
	return last_number ? NEXT_ENTRY : NEXT_NUMBER;
}

/* 1 up (*out set), 0 entry done (try the next), -1 round over. */
static int link_try_modem(struct engine *g, const struct phonebook_entry *e, struct link **out)
{
	struct link *l = link_new(e, "");
	struct cause c = {0};
	int troubles = 0, recovered = 0;

	if (modem_open(&l->m, e, g->o->lock_dir, &c) < 0) {
		int config = cause_class(c.id) == CC_CONFIG;
		link_failed(g, e, "", 1, 1, &c, config ? NEXT_SKIP : NEXT_ENTRY);
		if (config)
			link_skipped(g, e, &c);
		free(l);
		return 0;
	}
	l->have_modem = 1;
	for (size_t ni = 0; ni < e->numbers.n; ni++) {
		const char *number = e->numbers.v[ni];
		for (int k = 1; k <= e->redial_attempts; k++) {
			enum next_step next;
			if (link_time_left(g, 0) < 0) {
				g->rep->window_closed = 1;
				goto round_over;
			}
			link_dialing(g, e, number, k, e->redial_attempts, recovered);
			if (link_call(g, l, number, &c) == 0) {
				*out = l;
				return 1;
			}
			troubles = cause_class(c.id) == CC_MODEM ? troubles + 1 : 0;
			next = link_decide(&c, k, e->redial_attempts, ni + 1 == e->numbers.n,
					   troubles);
			link_failed(g, e, number, k, e->redial_attempts, &c, next);
			recovered = 0;
			switch (next) {
			case NEXT_SKIP:
				link_skipped(g, e, &c);
				goto entry_done;
			case NEXT_ENTRY:
				goto entry_done;
			case NEXT_RECOVER:
				if (link_recover(g, l, &c) < 0)
					goto entry_done;
				recovered = 1;
				k--; /* the retry after recovery is the same attempt */
				break;
			case NEXT_REDIAL:
				if (link_pause(g, e->redial_interval_ms) < 0)
					goto round_over;
				break;
			case NEXT_NUMBER:
				k = e->redial_attempts; /* on to the next number */
				break;
			}
		}
	}
entry_done:
	modem_close(&l->m);
	free(l);
	return 0;
round_over:
	modem_close(&l->m);
	free(l);
	return -1;
}

/* --- type = command and always ---------------------------------------- */

/* up, then check until it passes, all within up_timeout. */
static int link_command_up(const struct phonebook_entry *e, struct cause *c)
{
	long long deadline = clock_mono_ms() + e->up_timeout_ms;

	if (link_run(e->up, -1, e->up_timeout_ms, c) < 0)
		return -1;
	if (!e->check[0])
		return 0;
	for (;;) {
		long long left = deadline - clock_mono_ms();
		if (left <= 0)
			break;
		if (link_run(e->check, -1, (int)left, c) == 0)
			return 0;
		if (deadline - clock_mono_ms() > LINK_CHECK_EVERY_MS)
			clock_sleep_ms(LINK_CHECK_EVERY_MS);
		else
			break;
	}
	struct buf words = BUF_INIT;
	buf_printf(&words, "'%.50s' did not pass within %d ms%s%.60s", e->check, e->up_timeout_ms,
		   c->words[0] ? ": " : "", c->words);
	cause_set(c, CAUSE_CHECK_FAILED, buf_cstr(&words));
	buf_free(&words);
	return -1;
}

static int link_try_command(struct engine *g, const struct phonebook_entry *e, struct link **out)
{
	struct cause c = {0};

	for (int k = 1; k <= e->redial_attempts; k++) {
		enum next_step next;
		if (link_time_left(g, 0) < 0) {
			g->rep->window_closed = 1;
			return -1;
		}
		link_dialing(g, e, "", k, e->redial_attempts, 0);
		if (link_command_up(e, &c) == 0 && link_check_path(g, e, &c) == 0) {
			*out = link_new(e, "");
			return 1;
		}
		if (e->down[0]) {
			struct cause ignored;
			link_run(e->down, -1, e->up_timeout_ms, &ignored);
		}
		next = link_decide(&c, k, e->redial_attempts, 1, 0);
		if (next == NEXT_RECOVER)
			next = k < e->redial_attempts ? NEXT_REDIAL : NEXT_ENTRY;
		link_failed(g, e, "", k, e->redial_attempts, &c, next);
		if (next == NEXT_SKIP) {
			link_skipped(g, e, &c);
			return 0;
		}
		if (next != NEXT_REDIAL)
			return 0;
		if (link_pause(g, e->redial_interval_ms) < 0)
			return -1;
	}
	return 0;
}

/* --- the round ---------------------------------------------------------- */

static void link_round_failed(struct engine *g)
{
	struct buf sum = BUF_INIT;

	link_report_summary(g->rep, &sum);
	link_event(g, EV_DIALUP_ROUND_FAILED, NULL,
		   "No dial-up connection could be made in this round: %s",
		   sum.len ? buf_cstr(&sum) : "no entry to dial");
	buf_free(&sum);
}

int link_up(const struct phonebook_entry *const *entries, size_t n, const struct link_opts *o,
	    struct link **out, struct link_report *rep)
{
	struct engine g = {o, rep};

	*out = NULL;
	memset(rep, 0, sizeof(*rep));
	for (size_t i = 0; i < n; i++) {
		const struct phonebook_entry *e = entries[i];
		int rc;

		if (e->type == PB_ALWAYS) {
			*out = link_new(e, "");
			rc = 1;
		} else if (e->type == PB_COMMAND)
			rc = link_try_command(&g, e, out);
		else
			rc = link_try_modem(&g, e, out);
		if (rc == 1) {
			link_connected(&g, *out);
			return 0;
		}
		if (rc < 0)
			break;
	}
	if (rep->window_closed)
		link_progress(&g, "The session window closed; no further attempts in this round");
	else
		link_round_failed(&g);
	return -1;
}

void link_report_free(struct link_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		free(rep->v[i].entry);
		free(rep->v[i].number);
	}
	free(rep->v);
	memset(rep, 0, sizeof(*rep));
}

void link_report_summary(const struct link_report *rep, struct buf *out)
{
	for (size_t i = 0; i < rep->n; i++) {
		size_t j;
		for (j = i + 1; j < rep->n; j++)
			if (strcmp(rep->v[j].entry, rep->v[i].entry) == 0)
				break;
		if (j < rep->n)
			continue; /* a later attempt of this entry is the one to show */
		if (out->len)
			buf_puts(out, "; ");
		buf_printf(out, "%s: ", rep->v[i].entry);
		cause_describe(&rep->v[i].cause, out);
	}
}

/* --- an up link ---------------------------------------------------------- */

const struct phonebook_entry *link_entry(const struct link *l)
{
	return l->e;
}

const char *link_number(const struct link *l)
{
	return l->number;
}

int link_speed(const struct link *l)
{
	return l->m.speed;
}

const char *link_connect_text(const struct link *l)
{
	return l->m.connect;
}

int link_fd(const struct link *l)
{
	return l->have_modem && l->e->data == PB_DATA_DIRECT ? l->m.port.fd : -1;
}

int link_alive(struct link *l, struct cause *c)
{
	int status;

	if (l->pppd && waitpid(l->pppd, &status, WNOHANG) == l->pppd) {
		l->pppd = 0;
		cause_set(
		    c, WIFEXITED(status) ? cause_from_pppd(WEXITSTATUS(status)) : CAUSE_PPP_SIGNAL,
		    NULL);
		c->code = WIFEXITED(status) ? WEXITSTATUS(status) : 5;
		if (c->id == CAUSE_OK)
			cause_set(c, CAUSE_CARRIER_LOST, "pppd ended");
		return -1;
	}
	if (l->have_modem && l->e->data == PB_DATA_NONE)
		return modem_carrier(&l->m, c);
	if (l->e->type == PB_COMMAND && l->e->check[0])
		return link_check_poll(l, c) < 0 ? -1 : 0;
	return 0;
}

/* The check command of a command link, without blocking the caller's loop:
 * started at most every LINK_ALIVE_CHECK_MS, reaped by later calls. */
int link_check_poll(struct link *l, struct cause *c)
{
	long long now = clock_mono_ms();
	int status;
	pid_t r;

	if (l->check_pid == 0) {
		if (now < l->check_next)
			return 0;
		l->check_pid = link_spawn(NULL, l->e->check, -1, -1);
		l->check_deadline = now + l->e->up_timeout_ms;
		return l->check_pid > 0 ? 1 : (l->check_pid = 0);
	}
	r = waitpid(l->check_pid, &status, WNOHANG);
	if (r == 0 && now < l->check_deadline)
		return 1;
	if (r == 0) { /* on the daemon's loop: no waiting for a polite exit */
		kill(-l->check_pid, SIGKILL);
		kill(l->check_pid, SIGKILL);
		waitpid(l->check_pid, &status, 0);
		l->check_pid = 0;
		cause_set(c, CAUSE_CMD_TIMEOUT, NULL);
		snprintf(c->words, sizeof(c->words), "check '%.60s' ran longer than %d ms",
			 l->e->check, l->e->up_timeout_ms);
		return -1;
	}
	l->check_pid = 0;
	l->check_next = now + LINK_ALIVE_CHECK_MS;
	if (r < 0)
		return 0; /* reaped elsewhere: no verdict */
	return link_status_cause(l->e->check, status, "", c);
}

void link_down(struct link *l, const char *reason)
{
	const char *kv[3] = {"entry", NULL, NULL};
	int64_t secs;

	if (l == NULL)
		return;
	kv[1] = l->e->name;
	if (l->pppd)
		link_reap(l->pppd);
	if (l->check_pid)
		link_reap(l->check_pid);
	if (l->have_modem)
		modem_close(&l->m);
	if (l->e->type == PB_COMMAND && l->e->down[0]) {
		struct cause c = {0};
		struct buf words = BUF_INIT;
		if (link_run(l->e->down, -1, l->e->up_timeout_ms, &c) < 0) {
			cause_describe(&c, &words);
			log_warnx("link: %s: down command: %s", l->e->name, buf_cstr(&words));
		}
		buf_free(&words);
	}
	secs = (clock_usec() - l->start_usec) / 1000000;
	event_logkv(EV_DIALUP_HUNG_UP, kv,
		    "The dial-up connection '%s' was hung up after %lld s: %s", l->e->name,
		    (long long)secs, reason ? reason : "session ended");
	free(l);
}
