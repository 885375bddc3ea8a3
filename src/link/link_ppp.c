/* The ppp data phase of a modem call (data = ppp): pppd on the connected
 * line, up once its ip-up script signals (ppp_up_file) or, without one,
 * once it ran LINK_PPP_SETTLE_MS. Invariant: a pppd that ended is reaped
 * and *child is 0 again, and its exit status is the cause in words. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"
#include "link/link_type.h"

#define LINK_PPP_SETTLE_MS 3000 /* pppd without ppp_up_file: up once it ran this long */

/* pppd argv: PPPD nodetach OPTIONS... [ipparam UPFILE] */
static char **link_ppp_argv(const struct phonebook_entry *e)
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

static void link_ppp_argv_free(char **argv)
{
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* pppd's wait status as a cause: a signal (in signal_words), its exit
 * status (pppd(8)), or exit 0 as a lost carrier (in ended). */
static void link_ppp_ended(int status, const char *signal_words, const char *ended, struct cause *c)
{
	if (WIFSIGNALED(status)) {
		cause_set(c, CAUSE_PPP_SIGNAL, signal_words);
		c->code = 5;
		return;
	}
	cause_set(c, cause_from_pppd(WEXITSTATUS(status)), NULL);
	c->code = WEXITSTATUS(status);
	if (c->id == CAUSE_OK)
		cause_set(c, CAUSE_CARRIER_LOST, ended);
}

/* Waits for pppd's ip-up signal: the ppp_up_file appearing (an ip-up
 * script touches "$6", the ipparam), or, without one, pppd still running
 * after a settle time. */
static int link_ppp_wait_up(const struct phonebook_entry *e, pid_t *child, struct cause *c)
{
	long long start = clock_mono_ms();
	int status;

	for (;;) {
		long long ran = clock_mono_ms() - start;

		if (waitpid(*child, &status, WNOHANG) == *child) {
			*child = 0;
			link_ppp_ended(status,
				       WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : NULL,
				       "pppd ended at once", c);
			return -1;
		}
		if (e->ppp_up_file[0] ? access(e->ppp_up_file, F_OK) == 0
				      : ran >= LINK_PPP_SETTLE_MS)
			return 0;
		if (ran >= e->up_timeout_ms) {
			link_reap(*child);
			*child = 0;
			cause_set(c, CAUSE_PPP_UP_TIMEOUT, NULL);
			return -1;
		}
		clock_sleep_ms(50);
	}
}

/* Runs pppd on the connected line and waits until it is up. */
static int link_ppp_start(const struct phonebook_entry *e, struct modem *m, pid_t *child,
			  struct cause *c)
{
	char **argv = link_ppp_argv(e);

	if (e->ppp_up_file[0])
		unlink(e->ppp_up_file);
	if (access(argv[0], X_OK) < 0) {
		cause_set(c, CAUSE_PPP_NO_START, NULL);
		snprintf(c->words, sizeof(c->words), "%.80s: %s", argv[0], strerror(errno));
		link_ppp_argv_free(argv);
		return -1;
	}
	*child = link_spawn(argv, NULL, m->port.fd, -1);
	link_ppp_argv_free(argv);
	return link_ppp_wait_up(e, child, c);
}

/* A pppd that ended is a link that is down, with its exit status in c. */
static int link_ppp_alive(struct modem *m, pid_t *child, struct cause *c)
{
	int status;

	if (*child == 0 || waitpid(*child, &status, WNOHANG) != *child)
		return 0;
	*child = 0;
	link_ppp_ended(status, NULL, "pppd ended", c);
	return -1;
}

const struct link_data link_data_ppp = {
    .name = "ppp",
    .start = link_ppp_start,
    .alive = link_ppp_alive,
};
