/* The one clock: schedules, retries and ids read time here, so tests can
 * replace it instead of sleeping. */
#ifndef LIB_CLOCK_H
#define LIB_CLOCK_H
#include <stdint.h>
#include <time.h>

int64_t clock_usec(void);	   /* microseconds since the epoch */
time_t clock_now(void);		   /* seconds since the epoch */
void clock_set_fake(int64_t usec); /* tests: freeze time; 0 = real clock again */
void clock_advance(int64_t usec);  /* tests: move the frozen clock */
/* RFC 5322 date, e.g. "Wed, 25 Nov 2026 12:07:24 +0000". */
void clock_rfc5322(time_t t, char *out, size_t outlen);
/* ISO 8601 UTC with milliseconds, e.g. "2026-11-25T12:07:24.123Z". */
void clock_iso8601(int64_t usec, char *out, size_t outlen);
/* Local time for people, "2026-11-25 13:07:24 CET"; "none" for 0. */
void clock_local(time_t t, char *out, size_t outlen);

/* Monotonic milliseconds and a real sleep, for I/O deadlines only: a real
 * device or child process needs real time even when a test freezes the
 * wall clock above. */
long long clock_mono_ms(void);
void clock_sleep_ms(int ms);

#endif
