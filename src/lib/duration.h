/* Durations as the configuration writes them: one grammar for every
 * duration setting (top level, [session], [phonebook], retry_intervals,
 * schedules), so a value that works in one place works in all of them:
 * digits, then an optional unit ms, s, m (or min), h or d, in any case; a
 * bare number is seconds. "90", "90s", "1500ms", "15m", "2h", "7d". */
#ifndef LIB_DURATION_H
#define LIB_DURATION_H
#include <stddef.h>

/* Milliseconds of s; -1 if s is not a duration or is above max_ms. */
long long duration_parse_ms(const char *s, long long max_ms);
/* Seconds of s; -1 if s is not a duration, not whole seconds ("1500ms"),
 * or above max. */
long long duration_parse(const char *s, long long max);
/* ms in the largest unit that divides it exactly ("2h", "90s", "500ms";
 * 0 is "0s"), into out (NUL-terminated, truncated to len). */
void duration_format_ms(char *out, size_t len, long long ms);

#endif
