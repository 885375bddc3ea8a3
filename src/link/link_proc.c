/* Child processes of links, shared by the link types (link_type.h): pppd
 * and the up, down and check commands, each in its own process group.
 * Invariant: a child that is started is reaped, by a wait or by link_reap,
 * and no wait outlives the timeout it was given (link_reap: 3 s). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/spawn.h"
#include "link/link_type.h"

pid_t link_spawn(char *const *argv, const char *cmd, int io, int out_fd)
{
	struct spawn_opts o = {.argv = argv, .cmd = cmd, .in = io, .out = io, .err = out_fd};

	if (io < 0)
		o.out = out_fd;
	return spawn_child(&o);
}

int link_reap(pid_t pid)
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

int link_status_cause(const char *cmd, int status, const char *last, struct cause *c)
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

int link_run(const char *cmd, int io, int timeout_ms, struct cause *c)
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
