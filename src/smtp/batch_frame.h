/* XDMBATCH framing (docs/batch-protocol.md), shared by the sender
 * (batch_client.c) and the receiver (batch_server.c): records with a CRC-32
 * inside one zstd stream (with a versioned dictionary) cut into
 * length-prefixed segments. Invariant: a record is handed out only whole
 * and with its CRC checked; nothing here trusts a length from the wire. */
#ifndef SMTP_BATCH_FRAME_H
#define SMTP_BATCH_FRAME_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define BF_VERSION	1		     /* protocol version in the EHLO keyword */
#define BF_DICT_VERSION 1		     /* newest dictionary shipped (mailhdr-1) */
#define BF_SEG_MAX	65536		     /* segment payload */
#define BF_REC_MAX	(1024 * 1024 + 1024) /* record payload */
#define BF_ID_MAX	64		     /* transfer id characters */
#define BF_LEVEL	19		     /* zstd level the sender uses */
#define BF_WINDOW_LOG	20		     /* 1 MiB window, both ends */

#define BF_ACK_FLAG 0x80000000u /* duplex: a segment of lines, not of the batch */
#define BF_ACK_MAX  4096	/* ... its length at most */

enum bf_type { BF_MSG = 'M', BF_DATA = 'D', BF_END = 'E', BF_DROP = 'X', BF_BATCH_END = 'Z' };

struct evbuffer;
/* Duplex (docs/batch-protocol.md 12): the header of an ack frame of len
 * bytes of CRLF lines, added to out. */
void bframe_ack_header(struct evbuffer *out, size_t len);

/* The shipped dictionary of this version, or NULL (version 0 or unknown). */
const void *bframe_dict(int version, size_t *len);
/* CRC-32 (ISO-HDLC, as zlib's crc32): start with crc 0. */
uint32_t bframe_crc32(uint32_t crc, const void *p, size_t n);
/* The content checksum of an E record: the first 16 bytes of the SHA-256
 * of the n bytes at p, in lower-case hex. Both ends compute it here. */
void bframe_content_sum(const void *p, size_t n, char out[33]);
/* 1 if id is a valid transfer id (1..BF_ID_MAX of [A-Za-z0-9._-]). */
int bframe_id_valid(const char *id, size_t len);

struct bframe_enc;
/* A compressor for one batch; dict 0: none. NULL if dict is unknown. */
struct bframe_enc *bframe_enc_new(int dict);
void bframe_enc_free(struct bframe_enc *e);
/* Adds a record (len <= BF_REC_MAX); with flush, everything so far leaves
 * as segments appended to out (else only full segments do). -1 on error. */
int bframe_enc_put(struct bframe_enc *e, int type, const void *p, size_t len, int flush,
		   struct buf *out);
/* The Z record, the end of the zstd frame, and the end segment. */
int bframe_enc_finish(struct bframe_enc *e, struct buf *out);
/* Uncompressed record bytes put so far. */
uint64_t bframe_enc_raw(const struct bframe_enc *e);

struct bframe_rec {
	int type;
	const char *data; /* valid until the next bframe_dec_* call */
	size_t len;
};

enum bframe_feed { BFD_MORE = 0, BFD_ENDED = 1 };

struct bframe_dec;
/* A decompressor for one batch; dict 0: none. NULL if dict is unknown. */
struct bframe_dec *bframe_dec_new(int dict);
void bframe_dec_free(struct bframe_dec *d);
/* Takes segment bytes from p; *used tells how many. BFD_ENDED once the end
 * segment was taken (what follows is SMTP again). It takes no more while
 * decompressed data waits to be read with bframe_dec_next (bounded memory).
 * After an error it goes on taking segments, unread, up to the end segment. */
int bframe_dec_feed(struct bframe_dec *d, const unsigned char *p, size_t n, size_t *used);
/* The next whole record: 1, 0 (need more), -1 (error: see bframe_dec_error;
 * the decoder skips to the end segment from then on). */
int bframe_dec_next(struct bframe_dec *d, struct bframe_rec *r);
/* Makes the decoder skip to the end segment (an error above the framing). */
void bframe_dec_fail(struct bframe_dec *d, const char *why);
const char *bframe_dec_error(const struct bframe_dec *d); /* NULL: none */
int bframe_dec_ended(const struct bframe_dec *d);	  /* end segment taken */
int bframe_dec_batch_end(const struct bframe_dec *d);	  /* Z record read */

#endif
