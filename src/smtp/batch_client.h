/* XDMBATCH sender (docs/batch-protocol.md), run by the SMTP client
 * (smtp_client.c) on its connection when the server offered the keyword:
 * one command, then every message as records in one compressed stream,
 * acknowledgements read as they come. Invariant: a message is reported
 * delivered only on the server's "A" line for it; whatever has no A or N
 * line when the batch ends stays for plain SMTP or the next call. */
#ifndef SMTP_BATCH_CLIENT_H
#define SMTP_BATCH_CLIENT_H
#include <stddef.h>

#include <event2/bufferevent.h>

#include "smtp/smtp_client.h"

/* How a batch ended. */
enum batch_client_end {
	BC_DONE,     /* read to its end; the session is plain SMTP again */
	BC_FALLBACK, /* refused or aborted; plain SMTP again, do not try again */
	BC_LOST	     /* the connection broke or timed out */
};

struct batch_client_ops {
	/* recipient result index r of message i got a final refusal */
	void (*rcpt)(void *arg, size_t i, size_t r, int status, const char *reply);
	/* every recipient of message i without a result gets status */
	void (*msg)(void *arg, size_t i, int status, const char *reply);
	void (*end)(void *arg, enum batch_client_end how, const char *text);
};

struct batch_client_options {
	int server_version, server_dict; /* from the EHLO keyword */
	size_t chunk;			 /* data record size (checkpoint size) */
	int timeout_ms;			 /* for each reply line */
	/* The duplex exchange (batch_duplex.c) drives it: no callbacks are set
	 * on the bufferevent, lines come through batch_client_line. */
	int duplex;
	const char *cmd_extra; /* appended to the command ("DUPLEX=...") */
	int no_cmd;	       /* the hub's end: no command, batch_client_go */
};

struct batch_client;
/* Starts the batch for the messages i with skip[i] == 0. ops->end is called
 * exactly once, from the event loop; the bufferevent's callbacks are the
 * batch's until then. */
struct batch_client *batch_client_start(struct bufferevent *bev, struct smtpc_msg *msgs,
					size_t nmsgs, const int *skip,
					const struct batch_client_options *o,
					const struct batch_client_ops *ops, void *arg);
void batch_client_free(struct batch_client *b);
/* Duplex: one line of the peer's (go-ahead reply, then A/N/C lines and the
 * final reply), CRLF removed. */
void batch_client_line(struct batch_client *b, const char *line, size_t len);
/* Duplex, the hub's end: a checkpoint the peer listed, then the stream. */
void batch_client_resume(struct batch_client *b, const char *id, unsigned long long offset);
void batch_client_go(struct batch_client *b);
/* The go-ahead came: the stream is written, A/N/C lines expected. */
int batch_client_streaming(const struct batch_client *b);
/* Bytes written (compressed, framing included) and record bytes before
 * compression, for reports. */
void batch_client_bytes(const struct batch_client *b, uint64_t *wire, uint64_t *raw);
/* The transfer id of a message ("<queue id>.<8 hex>"): changes when its
 * envelope or content changes. */
void batch_client_msg_id(const struct smtpc_msg *m, char *out, size_t outlen);

#endif
