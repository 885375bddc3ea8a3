/* Durations as the configuration writes them: "90", "90s", "15m", "2h",
 * "7d". One grammar for every duration setting, so a value that works in
 * one place works in all of them. */
#ifndef LIB_DURATION_H
#define LIB_DURATION_H

/* Seconds of s: digits with an optional unit s, m, h or d (either case;
 * a bare number is seconds). -1 if s is not one or its number is above max
 * (before the unit is applied). */
long long duration_parse(const char *s, long long max);

#endif
