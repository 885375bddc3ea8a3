/* retrieve = command: retrieve_command under sh -c, at most retrieve_timeout,
 * started by spawn_child (signals blocked across fork, process group set by
 * both sides, so a cancel right after the start reaches it).
 * Invariant: the child never outlives the job (the timeout or a cancel kills
 * its whole process group). */
#include <stddef.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/event.h"
#include "dialup/retrieve.h"
#include "lib/clock.h"
#include "lib/spawn.h"
#include "lib/xmalloc.h"

extern char **environ;
extern const struct retrieval command_method;

/* --- settings ------------------------------------------------------------ */

static const struct setting command_settings[] = {
    {.name = "retrieve_command",
     .type = T_STRING,
     .off = offsetof(struct session_config, retrieve_command),
     .help = "run with sh -c after outbound delivery (retrieve = command)"},
};
static const struct settings_table command_table = {"[session]", command_settings, 1};

static const char *command_check(const struct config *cfg, const struct session_config *sc)
{
	if (sc->retrieve_command == NULL || sc->retrieve_command[0] == '\0')
		return "retrieve = command needs retrieve_command";
	return NULL;
}

/* --- the job --------------------------------------------------------------- */

struct command {
	pid_t pid;     /* the child, or 0 */
	int64_t until; /* its deadline (retrieve_timeout) */
};

static void command_cancel(struct retrieve_job *j)
{
	struct command *x = j->state;

	if (x->pid > 0) {
		kill(-x->pid, SIGKILL);
		while (waitpid(x->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	free(x);
}

/* Environment of the command: ours plus DIALMAIL_ENTRY and DIALMAIL_SMARTHOST,
 * built before fork (no allocation between fork and exec). */
static char **command_env(const struct retrieve_job *j)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = xcalloc(n + 3, sizeof(*env));
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "DIALMAIL_ENTRY=", 15) != 0 &&
		    strncmp(environ[i], "DIALMAIL_SMARTHOST=", 19) != 0)
			env[k++] = xstrdup(environ[i]);
	env[k++] = xasprintf("DIALMAIL_ENTRY=%s", j->entry);
	env[k++] = xasprintf("DIALMAIL_SMARTHOST=%s", j->host ? j->host : "");
	return env;
}

static void command_env_free(char **env)
{
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
}

/* Event 4122 with how the command ended, then the end of the job. */
static void command_status(struct retrieve_job *j, int status, int timed_out)
{
	const char *cmd = j->ctx.sc->retrieve_command;
	char st[32];
	const char *kv[] = {"status", st, NULL};
	char *text;
	int ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;

	if (timed_out)
		snprintf(st, sizeof(st), "timeout");
	else if (WIFEXITED(status))
		snprintf(st, sizeof(st), "%d", WEXITSTATUS(status));
	else
		snprintf(st, sizeof(st), "signal %d", WTERMSIG(status));
	if (timed_out)
		text = xasprintf("retrieval command `%s` killed after retrieve_timeout (%d s)", cmd,
				 j->ctx.sc->retrieve_timeout);
	else if (WIFEXITED(status))
		text = xasprintf("retrieval command `%s` exited with status %d", cmd,
				 WEXITSTATUS(status));
	else
		text =
		    xasprintf("retrieval command `%s` killed by signal %d", cmd, WTERMSIG(status));
	event_logkv(EV_RETRIEVE_COMMAND, kv, "Inbound retrieval via %s: %s", j->entry, text);
	retrieve_finish(j, ok, text);
	free(text);
}

static void command_on_child(evutil_socket_t fd, short what, void *arg)
{
	struct retrieve_job *j = arg;
	struct command *x = j->state;
	int status = 0;
	pid_t r = waitpid(x->pid, &status, WNOHANG);

	if (r == x->pid) {
		x->pid = 0;
		command_status(j, status, 0);
		return;
	}
	if (r < 0 && errno != EINTR) {
		x->pid = 0;
		retrieve_failed(j, "lost the command's process: %s", strerror(errno));
		retrieve_finish(j, 0, buf_cstr(&j->summary));
		return;
	}
	if (clock_usec() < x->until)
		return;
	kill(-x->pid, SIGKILL);
	while (waitpid(x->pid, &status, 0) < 0 && errno == EINTR)
		;
	x->pid = 0;
	command_status(j, status, 1);
}

static struct retrieve_job *command_run(const struct retrieval_ctx *ctx)
{
	struct retrieve_job *j = retrieve_job_new(&command_method, ctx);
	struct command *x = xcalloc(1, sizeof(*x));
	char **env = command_env(j);
	const char *cmd = ctx->sc->retrieve_command;
	struct spawn_opts o = {.cmd = cmd, .env = env, .in = -1, .out = -1, .err = -1};
	pid_t pid = spawn_child(&o);

	j->state = x;
	command_env_free(env);
	if (pid < 0) {
		retrieve_failed(j, "cannot start `%s`: %s", cmd, strerror(errno));
		retrieve_finish(j, 0, buf_cstr(&j->summary));
		return NULL;
	}
	x->pid = pid;
	x->until = clock_usec() + (int64_t)ctx->sc->retrieve_timeout * 1000000;
	retrieve_tick(j, command_on_child);
	return j;
}

const struct retrieval command_method = {
    .name = "command",
    .settings = &command_table,
    .check = command_check,
    .run = command_run,
    .cancel = command_cancel,
};
