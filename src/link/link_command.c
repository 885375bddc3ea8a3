/* type = command: a link brought up by the entry's `up` command and proven
 * by its `check` command, taken down by `down`. Invariant: every failed
 * attempt runs `down`, and the check of a link that is up never blocks its
 * caller: it runs as a child that later calls reap (link_check_poll). */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "link/link_type.h"

#define LINK_CHECK_EVERY_MS 500 /* while coming up: pause between check runs */

/* The state of a command link that is up. */
struct link_command {
	pid_t check_pid;	  /* a liveness check running, 0 if none */
	long long check_deadline; /* clock_mono_ms() after which it is killed */
	long long check_next;	  /* clock_mono_ms() when the next check may start */
};

/* up, then check until it passes, all within up_timeout. */
static int link_command_call(struct link *l, const char *number, struct cause *c)
{
	const struct phonebook_entry *e = l->e;
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

/* After a failed attempt: `down`, whatever it says. */
static void link_command_abort(struct link *l, int hold_ms)
{
	struct cause ignored;

	if (l->e->down[0])
		link_run(l->e->down, -1, l->e->up_timeout_ms, &ignored);
}

static int link_command_alive(struct link *l, struct cause *c)
{
	if (!l->e->check[0])
		return 0;
	return link_check_poll(l, c) < 0 ? -1 : 0;
}

/* The check's verdict once it ended: killed past its deadline, or its exit. */
static int link_command_reaped(struct link *l, pid_t r, int status, long long now, struct cause *c)
{
	struct link_command *lc = l->state;

	if (r == 0) { /* on the daemon's loop: no waiting for a polite exit */
		kill(-lc->check_pid, SIGKILL);
		kill(lc->check_pid, SIGKILL);
		waitpid(lc->check_pid, &status, 0);
		lc->check_pid = 0;
		cause_set(c, CAUSE_CMD_TIMEOUT, NULL);
		snprintf(c->words, sizeof(c->words), "check '%.60s' ran longer than %d ms",
			 l->e->check, l->e->up_timeout_ms);
		return -1;
	}
	lc->check_pid = 0;
	lc->check_next = now + LINK_ALIVE_CHECK_MS;
	if (r < 0)
		return 0; /* reaped elsewhere: no verdict */
	return link_status_cause(l->e->check, status, "", c);
}

/* The check command of a command link, without blocking the caller's loop:
 * started at most every LINK_ALIVE_CHECK_MS, reaped by later calls. */
int link_check_poll(struct link *l, struct cause *c)
{
	struct link_command *lc = l->state;
	long long now = clock_mono_ms();
	int status = 0;
	pid_t r;

	if (l->type != &link_type_command)
		return 0; /* only a command link has a check to run */
	if (lc->check_pid == 0) {
		if (now < lc->check_next)
			return 0;
		lc->check_pid = link_spawn(NULL, l->e->check, -1, -1);
		lc->check_deadline = now + l->e->up_timeout_ms;
		return lc->check_pid > 0 ? 1 : (lc->check_pid = 0);
	}
	r = waitpid(lc->check_pid, &status, WNOHANG);
	if (r == 0 && now < lc->check_deadline)
		return 1;
	return link_command_reaped(l, r, status, now, c);
}

/* Stops a running check, then `down`; a failing `down` is only logged. */
static void link_command_down(struct link *l)
{
	struct link_command *lc = l->state;
	struct cause c = {0};
	struct buf words = BUF_INIT;

	if (lc->check_pid)
		link_reap(lc->check_pid);
	lc->check_pid = 0;
	if (l->e->down[0] && link_run(l->e->down, -1, l->e->up_timeout_ms, &c) < 0) {
		cause_describe(&c, &words);
		log_warnx("link: %s: down command: %s", l->e->name, buf_cstr(&words));
	}
	buf_free(&words);
}

const struct link_type link_type_command = {
    .name = "command",
    .state_size = sizeof(struct link_command),
    .call = link_command_call,
    .abort = link_command_abort,
    .alive = link_command_alive,
    .down = link_command_down,
};
