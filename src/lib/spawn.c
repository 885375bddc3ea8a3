/* spawn_child: fork with signals blocked, a process group, exec. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "lib/spawn.h"

extern char **environ;

static void spawn_child_signals(const sigset_t *old)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2, SIGPIPE};

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* In the child: the standard descriptors, then exec. Never returns. */
static void spawn_exec(const struct spawn_opts *o)
{
	int null = open("/dev/null", O_RDWR);
	int fds[3] = {o->in, o->out, o->err};
	char *const *env = o->env ? o->env : environ;

	for (int i = 0; i < 3; i++)
		dup2(fds[i] >= 0 ? fds[i] : null, i);
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	if (o->argv)
		execve(o->argv[0], o->argv, env);
	else
		execle("/bin/sh", "sh", "-c", o->cmd, (char *)NULL, env);
	_exit(127);
}

pid_t spawn_child(const struct spawn_opts *o)
{
	sigset_t all, old;
	pid_t pid;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid != 0) {
		if (pid > 0)
			setpgid(pid, pid);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return pid;
	}
	setpgid(0, 0);
	spawn_child_signals(&old);
	spawn_exec(o);
	return -1; /* not reached */
}
