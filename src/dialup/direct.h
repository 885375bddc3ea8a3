/* data = direct phone book entries: SMTP over the serial line itself, no
 * PPP, no IP. One circuit carries the hub's greeting, EHLO, AUTH, the
 * outbound mail queued for routes via the entry, then (retrieve = atrn) ATRN
 * and the held mail in the other direction, until the hub's QUIT.
 * Invariant: a recipient is marked delivered on either side only after the
 * other side's 2xx for its data; a dropped line leaves the rest queued. */
#ifndef DIALUP_DIRECT_H
#define DIALUP_DIRECT_H
#include <event2/event.h>

#include "mail/config.h"
#include "dialup/session.h"
#include "lib/buf.h"
#include "queue/queue.h"

struct delivery;
struct smtp_server;
struct direct;

struct direct_ctx {
	struct event_base *base;
	const struct config *cfg;
	const struct session_config *sc; /* retrieve, atrn_domains, atrn_auth */
	struct queue *q;
	struct delivery *d;	  /* DSNs for refused recipients; may be NULL */
	struct smtp_server *smtp; /* receives the held mail after ATRN */
	const char *entry;	  /* the phone book entry (routes via=entry) */
	int fd;			  /* the tty carrying the call (dup'ed; the caller keeps it) */
	/* Called once at the end (hub's QUIT, refusal, lost line), from the loop,
	 * after the job freed itself. */
	void (*done)(int ok, const char *text, void *arg);
	void *arg;
};

/* Starts the job; NULL with why filled if it cannot start (done not called). */
struct direct *direct_start(const struct direct_ctx *ctx, struct buf *why);
/* Stops a job in progress (done not called). NULL is fine. */
void direct_free(struct direct *x);
/* Outbound counters so far: messages fully accepted by the hub, bytes sent. */
void direct_stats(const struct direct *x, unsigned *msgs_out, unsigned long long *bytes_out);

/* --- internals exposed for unit tests ---------------------------------------- */

/* The client->hub half of the relay between the SMTP client engine and the
 * line: tracks commands, replies and data so the engine's QUIT can be kept
 * off the line (the circuit goes on with ATRN). */
struct direct_relay {
	unsigned sent, answered; /* commands sent, final replies seen */
	unsigned data_cmd;	 /* number of the DATA command awaiting 354, 0: none */
	int data;		 /* in message data (after 354) until "." */
	uint64_t bdat_left;	 /* BDAT octets still to pass */
	int quit;		 /* the engine sent QUIT: answer it when replies are in */
	/* XDMBATCH (docs/batch-protocol.md): 1 its go-ahead awaited, 2 the
	 * stream's segments pass untouched, 3 acknowledgement lines until the
	 * final reply (which answers no command of the count) */
	int batch;
	unsigned batch_cmd;	  /* number of the XDMBATCH command */
	unsigned char seg_hdr[4]; /* segment header being read */
	size_t seg_hdr_n;
	uint64_t seg_left; /* segment payload still to pass */
};
/* Feeds the engine's bytes; appends what goes on the line to line_out.
 * Returns 1 when the engine's QUIT was taken off (answer it once
 * relay->answered == relay->sent). */
int direct_relay_client(struct direct_relay *r, struct buf *pending, const char *p, size_t n,
			struct buf *line_out);
/* Notes one reply line from the hub (without CRLF). */
void direct_relay_reply(struct direct_relay *r, const char *line, size_t n);

#endif
