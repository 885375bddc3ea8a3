/* The session ledger: one JSON line per dial-up session in
 * DIR/log/sessions.jsonl (what `dialmail sessions` reads). Invariant: a
 * record is written with one write() on an O_APPEND descriptor. */
#ifndef DIALUP_LEDGER_H
#define DIALUP_LEDGER_H
#include <stdint.h>
#include <time.h>

#include <jansson.h>

/* What one session did; times in microseconds of the clock (lib/clock.h). */
struct ledger_record {
	int64_t start_usec;
	time_t slot;	    /* the slot served, 0: none */
	const char *reason; /* "scheduled", "catch-up", "dial command", "queued mail" */
	int ok;
	json_t *attempts; /* every dial attempt (borrowed) */
	int rounds;
	const char *entry;    /* the entry that came up, or NULL */
	int64_t connect_usec; /* 0: never connected */
	unsigned long long bytes_out, bytes_in;
	unsigned msgs_out, msgs_in;
	const char *hangup_reason; /* or NULL */
	time_t next_slot;	   /* 0: none */
};

/* Appends r to DIR/log/sessions.jsonl (a failure is logged, not fatal). */
void ledger_append(const char *dir, const struct ledger_record *r);
/* t as an ISO 8601 string, or JSON null for 0. */
json_t *ledger_json_time(time_t t);

/* Reads DIR/log/sessions.jsonl from *offset on and calls cb with each
 * complete record (borrowed); *offset moves past the lines read, so a
 * caller can follow the ledger. A ledger shorter than *offset (rotated)
 * is read from its start. -1 if it cannot be read (none yet: 0). */
int ledger_read(const char *dir, long long *offset, void (*cb)(json_t *rec, void *arg), void *arg);
/* An offset at the start of a line of the ledger such that every record
 * before it started before t (records are in the order of their start:
 * one session at a time). For reading a period of a long ledger without
 * parsing its years before; 0 when in doubt. */
long long ledger_offset_before(const char *dir, time_t t);
/* A ledger time ("2026-12-06T15:32:49.123Z") in seconds; 0 for null or
 * anything else. */
time_t ledger_time(const json_t *v);

#endif
