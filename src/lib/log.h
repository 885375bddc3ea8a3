/* Diagnostics for operators and developers (stderr and/or syslog), apart from
 * the event log. fatal*: the environment failed; panic: our own bug. */
#ifndef LIB_LOG_H
#define LIB_LOG_H

#define PRINTF(a, b) __attribute__((format(printf, a, b)))

void log_init(const char *progname, int to_stderr, int to_syslog);
void log_verbose(int level);
void log_debug(const char *fmt, ...) PRINTF(1, 2);
void log_info(const char *fmt, ...) PRINTF(1, 2);
void log_warn(const char *fmt, ...) PRINTF(1, 2); /* appends strerror(errno) */
void log_warnx(const char *fmt, ...) PRINTF(1, 2);
__attribute__((noreturn)) void fatal(const char *fmt, ...) PRINTF(1, 2);
__attribute__((noreturn)) void fatalx(const char *fmt, ...) PRINTF(1, 2);
__attribute__((noreturn)) void panic(const char *fmt, ...) PRINTF(1, 2);

#endif
