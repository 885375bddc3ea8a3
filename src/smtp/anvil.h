/* Per-client connection and message counters for the SMTP server (after
 * Postfix's anvil): a fixed table keyed by client address, so a flood of
 * addresses cannot grow memory. Invariant: an entry with open connections is
 * never evicted; the others expire a minute after their last use. */
#ifndef SMTP_ANVIL_H
#define SMTP_ANVIL_H
#include <stddef.h>
#include <time.h>

#define ANVIL_WINDOW 60 /* seconds: rates are counted per minute */

struct anvil;
struct anvil_client;

/* A table for at most cap addresses (cap must exceed the number of
 * connections that can be open at once). */
struct anvil *anvil_new(size_t cap);
void anvil_free(struct anvil *a);
/* A connection from key at now: its entry, with the connections now open
 * from key (this one included) and opened in this minute put in *conns and
 * *rate. Every call must be matched by anvil_disconnect. */
struct anvil_client *anvil_connect(struct anvil *a, const char *key, time_t now, int *conns,
				   int *rate);
void anvil_disconnect(struct anvil_client *c, time_t now);
/* One more message (MAIL) from c at now: the number in this minute. */
int anvil_message(struct anvil_client *c, time_t now);
/* 1 when a limit event for c should be written at now (at most one a minute
 * per client); *suppressed gets the refusals not logged since the last. */
int anvil_warn(struct anvil_client *c, time_t now, int *suppressed);
/* Entries in use (tests). */
size_t anvil_size(const struct anvil *a, time_t now);

#endif
