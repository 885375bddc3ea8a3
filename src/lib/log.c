/* Diagnostics log: one line per call, prefixed by the program name. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "lib/log.h"

static const char *log_prog = "dialmail";
static int log_stderr = 1;
static int log_syslog;
static int log_level;

void log_init(const char *progname, int to_stderr, int to_syslog)
{
	log_prog = progname;
	log_stderr = to_stderr;
	log_syslog = to_syslog;
	if (to_syslog)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_verbose(int level)
{
	log_level = level;
}

static void log_vwrite(int prio, const char *fmt, va_list ap, const char *err)
{
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_stderr) {
		if (err)
			fprintf(stderr, "%s: %s: %s\n", log_prog, msg, err);
		else
			fprintf(stderr, "%s: %s\n", log_prog, msg);
	}
	if (log_syslog) {
		if (err)
			syslog(prio, "%s: %s", msg, err);
		else
			syslog(prio, "%s", msg);
	}
}

#define LOG_BODY(prio, err)                                                                        \
	va_list ap;                                                                                \
	va_start(ap, fmt);                                                                         \
	log_vwrite(prio, fmt, ap, err);                                                            \
	va_end(ap)

void log_debug(const char *fmt, ...)
{
	if (log_level < 1)
		return;
	LOG_BODY(LOG_DEBUG, NULL);
}

void log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_INFO, NULL);
}

void log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);
	LOG_BODY(LOG_WARNING, err);
}

void log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_WARNING, NULL);
}

void fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);
	LOG_BODY(LOG_CRIT, err);
	exit(75); /* EX_TEMPFAIL: the environment, not the input */
}

void fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, NULL);
	exit(75);
}

void panic(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, "internal error");
	abort();
}
