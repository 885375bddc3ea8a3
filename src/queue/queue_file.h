/* Queue file and state file images in memory: formatting and strict parsing,
 * no I/O. Invariant: a parse succeeds only on a complete, self-consistent
 * image (magic, version, end record, size and CRC32 all agree). */
#ifndef QUEUE_QUEUE_FILE_H
#define QUEUE_QUEUE_FILE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/buf.h"
#include "queue/queue.h"

#define QF_MAGIC   "DIALMAIL-QUEUE"
#define QF_VERSION 1
#define QS_MAGIC   "DIALMAIL-STATE"
#define QS_VERSION 1
#define QF_WHY_MAX 128 /* size of the reason buffers below */

/* CRC-32 (IEEE 802.3, the one zlib and gzip use); start with crc 0. */
uint32_t queue_file_crc32(uint32_t crc, const void *data, size_t len);
/* The CRC-32 of A then B from crc(A), crc(B) and B's length. */
uint32_t queue_file_crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);

/* 1 if s can be stored as a one-line record value (no CR, LF). */
int queue_file_value_ok(const char *s);

/* The size record's value is zero-padded to this many digits by a writer
 * that fills it in after the content (readers accept leading zeros). */
#define QF_SIZE_WIDTH 20

/* Appends the envelope records, "size" last, its value zero-padded to
 * size_width digits (0: as short as possible). */
void queue_file_format_envelope(struct buf *out, const struct q_env *env, int size_width);
/* Appends the end record that follows size bytes of content; crc covers
 * the file from its first byte through the content. */
void queue_file_format_end(struct buf *out, uint64_t size, uint32_t crc);

/* Appends the whole queue file for env (id, created, size already set) and
 * the content iov to out. */
void queue_file_format(struct buf *out, const struct q_env *env, const struct iovec *iov,
		       int iovcnt);

/* Parses a queue file image into env (recipients pending); *content_off is
 * where the env->size content bytes start. -1 with a reason in why. */
int queue_file_parse(const char *data, size_t len, struct q_env *env, size_t *content_off,
		     char why[QF_WHY_MAX]);

/* Parses only the envelope of a queue file of file_len bytes from its first
 * len bytes (data), as queue_file_parse does, and checks that file_len fits
 * the envelope's size. The content and the checksum are not looked at, so
 * damage inside the file shows only in queue_file_parse. 0 (*content_off
 * set), -1 damaged (reason in why), 1 if data ends before the envelope
 * does and len < file_len: call again with more. */
int queue_file_parse_envelope(const char *data, size_t len, uint64_t file_len, struct q_env *env,
			      size_t *content_off, char why[QF_WHY_MAX]);

/* Appends the state file image for env's recipients to out. */
void queue_file_state_format(struct buf *out, const struct q_env *env);

/* Applies a state file image to env, whose recipients come from the queue
 * file. All or nothing: on -1 (reason in why) env is unchanged. */
int queue_file_state_parse(const char *data, size_t len, struct q_env *env, char why[QF_WHY_MAX]);

#endif
