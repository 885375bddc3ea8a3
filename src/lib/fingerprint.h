/* Certificate pins as administrators write them: one parser for every place
 * a SHA-256 fingerprint is configured (routes, ATRN, the direct line).
 * Invariant: a parsed pin is exactly 64 lower-case hex digits. */
#ifndef LIB_FINGERPRINT_H
#define LIB_FINGERPRINT_H

/* A pin as configured, "sha256:AB:cd:..." or "abcd..." (the prefix and the
 * colons optional) -> 64 lower-case hex digits; NULL if it is not one.
 * Caller frees. */
char *fingerprint_parse(const char *s);

#endif
