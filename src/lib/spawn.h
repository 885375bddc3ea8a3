/* Starting child processes from a daemon with signal handlers and threads.
 * The child between fork and exec is a copy of the daemon: a signal sent to
 * it then (a hang-up reaping a command that just started) would run the
 * daemon's handler, which tells the daemon's own loop through a shared
 * descriptor: the daemon would stop. So signals stay blocked across fork,
 * the child resets their handlers before it unblocks them, and both sides
 * set the process group, so kill(-pid) reaches the child at once.
 * posix_spawn would do the blocking but not the process group on every
 * libc we build on and not the descriptor closing, hence fork here. */
#ifndef LIB_SPAWN_H
#define LIB_SPAWN_H
#include <sys/types.h>

struct spawn_opts {
	char *const *argv; /* argv[0] is a path; NULL: "sh -c cmd" */
	const char *cmd;
	char *const *env; /* NULL: the daemon's environment */
	int in, out, err; /* descriptors for 0, 1, 2; -1: /dev/null */
};

/* Starts the child in a process group of its own, every other descriptor
 * closed. Returns its pid, or -1 (errno) if fork failed. No allocation
 * happens in the child: build env before. */
pid_t spawn_child(const struct spawn_opts *o);

#endif
