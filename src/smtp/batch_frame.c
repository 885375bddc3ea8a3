/* XDMBATCH framing: records -> one zstd stream -> segments, and back.
 * The dictionaries are the files of src/smtp/batch_dict/, assembled into
 * the program (.incbin), so both ends of one version have the same bytes.
 * Invariant: the decoder holds at most one segment header, the zstd window
 * and about two records of decompressed data, whatever the peer sends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "lib/xmalloc.h"
#include "smtp/batch_frame.h"

__asm__(".section .rodata\n"
	".balign 16\n"
	"bframe_dict1_start:\n"
	".incbin \"src/smtp/batch_dict/mailhdr-1.zdict\"\n"
	"bframe_dict1_end:\n"
	".previous\n");
extern const unsigned char bframe_dict1_start[] __asm__("bframe_dict1_start");
extern const unsigned char bframe_dict1_end[] __asm__("bframe_dict1_end");

#define BF_HDR	   5			 /* type + length */
#define BF_OUT_MAX (2 * BF_REC_MAX + 64) /* decompressed data held at most */

const void *bframe_dict(int version, size_t *len)
{
	if (version != 1)
		return NULL;
	*len = (size_t)(bframe_dict1_end - bframe_dict1_start);
	return bframe_dict1_start;
}

uint32_t bframe_crc32(uint32_t crc, const void *p, size_t n)
{
	static uint32_t table[256];
	const unsigned char *s = p;

	if (table[1] == 0)
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;

			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
	crc = ~crc;
	while (n--)
		crc = table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

void bframe_content_sum(const void *p, size_t n, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	EVP_Digest(p ? p : "", n, md, &len, EVP_sha256(), NULL);
	for (unsigned i = 0; i < len && i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int bframe_id_valid(const char *id, size_t len)
{
	if (len == 0 || len > BF_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
			    id[i]) ||
		    id[i] == '\0')
			return 0;
	return 1;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void bframe_ack_header(struct evbuffer *out, size_t len)
{
	unsigned char h[4];

	put_be32(h, BF_ACK_FLAG | (uint32_t)len);
	evbuffer_add(out, h, 4);
}

/* ------------------------------------------------------------- encoder */

struct bframe_enc {
	ZSTD_CCtx *z;
	struct buf seg; /* compressed bytes not yet cut into segments */
	uint64_t raw;
};

struct bframe_enc *bframe_enc_new(int dict)
{
	struct bframe_enc *e;
	const void *d = NULL;
	size_t dlen = 0;

	if (dict != 0 && (d = bframe_dict(dict, &dlen)) == NULL)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	e->z = ZSTD_createCCtx();
	if (e->z == NULL ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(e->z, ZSTD_c_compressionLevel, BF_LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(e->z, ZSTD_c_windowLog, BF_WINDOW_LOG)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(e->z, ZSTD_c_checksumFlag, 1)) ||
	    (d && ZSTD_isError(ZSTD_CCtx_loadDictionary(e->z, d, dlen)))) {
		bframe_enc_free(e);
		return NULL;
	}
	return e;
}

void bframe_enc_free(struct bframe_enc *e)
{
	if (e == NULL)
		return;
	ZSTD_freeCCtx(e->z);
	buf_free(&e->seg);
	free(e);
}

uint64_t bframe_enc_raw(const struct bframe_enc *e)
{
	return e->raw;
}

/* Cuts e->seg into segments: all of it (all), else only full ones. */
static void enc_emit(struct bframe_enc *e, int all, struct buf *out)
{
	size_t off = 0;
	unsigned char h[4];

	while (e->seg.len - off >= BF_SEG_MAX || (all && e->seg.len > off)) {
		size_t n = e->seg.len - off < BF_SEG_MAX ? e->seg.len - off : BF_SEG_MAX;

		put_be32(h, (uint32_t)n);
		buf_append(out, h, 4);
		buf_append(out, e->seg.data + off, n);
		off += n;
	}
	memmove(e->seg.data, e->seg.data + off, e->seg.len - off);
	e->seg.len -= off;
}

/* Compresses p into e->seg with the given end directive. */
static int enc_run(struct bframe_enc *e, const void *p, size_t n, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = {p, n, 0};
	size_t left;

	do {
		ZSTD_outBuffer ob;

		buf_reserve(&e->seg, ZSTD_CStreamOutSize());
		ob = (ZSTD_outBuffer){e->seg.data + e->seg.len, ZSTD_CStreamOutSize(), 0};
		left = ZSTD_compressStream2(e->z, &ob, &in, mode);
		if (ZSTD_isError(left))
			return -1;
		e->seg.len += ob.pos;
	} while (mode == ZSTD_e_continue ? in.pos < in.size : left != 0);
	return 0;
}

int bframe_enc_put(struct bframe_enc *e, int type, const void *p, size_t len, int flush,
		   struct buf *out)
{
	unsigned char h[BF_HDR], c[4];
	uint32_t crc;

	if (len > BF_REC_MAX)
		return -1;
	h[0] = (unsigned char)type;
	put_be32(h + 1, (uint32_t)len);
	crc = bframe_crc32(bframe_crc32(0, h, BF_HDR), p, len);
	put_be32(c, crc);
	if (enc_run(e, h, BF_HDR, ZSTD_e_continue) < 0 || enc_run(e, p, len, ZSTD_e_continue) < 0 ||
	    enc_run(e, c, 4, flush ? ZSTD_e_flush : ZSTD_e_continue) < 0)
		return -1;
	e->raw += BF_HDR + len + 4;
	enc_emit(e, flush, out);
	return 0;
}

int bframe_enc_finish(struct bframe_enc *e, struct buf *out)
{
	static const unsigned char end[4] = {0, 0, 0, 0};

	if (bframe_enc_put(e, BF_BATCH_END, "", 0, 0, out) < 0 || enc_run(e, "", 0, ZSTD_e_end) < 0)
		return -1;
	enc_emit(e, 1, out);
	buf_append(out, end, 4);
	return 0;
}

/* ------------------------------------------------------------- decoder */

struct bframe_dec {
	ZSTD_DCtx *z;
	unsigned char hdr[4];
	size_t nhdr;	 /* bytes of the next segment header read */
	size_t seg_left; /* payload bytes of the current segment still to come */
	struct buf out;	 /* decompressed, from out_off on unread */
	size_t out_off;
	int ended, zdone, batch_end;
	char *error;
};

struct bframe_dec *bframe_dec_new(int dict)
{
	struct bframe_dec *d;
	const void *p = NULL;
	size_t plen = 0;

	if (dict != 0 && (p = bframe_dict(dict, &plen)) == NULL)
		return NULL;
	d = xcalloc(1, sizeof(*d));
	d->z = ZSTD_createDCtx();
	if (d->z == NULL ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(d->z, ZSTD_d_windowLogMax, BF_WINDOW_LOG)) ||
	    (p && ZSTD_isError(ZSTD_DCtx_loadDictionary(d->z, p, plen)))) {
		bframe_dec_free(d);
		return NULL;
	}
	return d;
}

void bframe_dec_free(struct bframe_dec *d)
{
	if (d == NULL)
		return;
	ZSTD_freeDCtx(d->z);
	buf_free(&d->out);
	free(d->error);
	free(d);
}

void bframe_dec_fail(struct bframe_dec *d, const char *why)
{
	if (d->error == NULL)
		d->error = xstrdup(why);
}

const char *bframe_dec_error(const struct bframe_dec *d)
{
	return d->error;
}

int bframe_dec_ended(const struct bframe_dec *d)
{
	return d->ended;
}

int bframe_dec_batch_end(const struct bframe_dec *d)
{
	return d->batch_end;
}

/* Decompresses n payload bytes of the current segment. */
static int dec_inflate(struct bframe_dec *d, const unsigned char *p, size_t n, size_t *used)
{
	ZSTD_inBuffer in = {p, n, 0};

	while (in.pos < in.size && d->out.len - d->out_off < BF_OUT_MAX) {
		ZSTD_outBuffer ob;
		size_t rc;

		if (d->zdone) {
			bframe_dec_fail(d, "data after the end of the compressed stream");
			break;
		}
		buf_reserve(&d->out, ZSTD_DStreamOutSize());
		ob = (ZSTD_outBuffer){d->out.data + d->out.len, ZSTD_DStreamOutSize(), 0};
		rc = ZSTD_decompressStream(d->z, &ob, &in);
		if (ZSTD_isError(rc)) {
			char why[160];

			snprintf(why, sizeof(why), "decompression failed: %s",
				 ZSTD_getErrorName(rc));
			bframe_dec_fail(d, why);
			break;
		}
		d->out.len += ob.pos;
		d->zdone = rc == 0;
	}
	*used = d->error ? n : in.pos;
	return 0;
}

/* Moves unread output to the front once half of the buffer is read. */
static void dec_compact(struct bframe_dec *d)
{
	if (d->out_off == 0 || d->out_off < d->out.len / 2)
		return;
	memmove(d->out.data, d->out.data + d->out_off, d->out.len - d->out_off);
	d->out.len -= d->out_off;
	d->out_off = 0;
}

/* One step: a header byte, or segment payload. 0: nothing taken. */
static size_t dec_step(struct bframe_dec *d, const unsigned char *p, size_t n)
{
	size_t used = 0, take;

	if (d->seg_left == 0) {
		d->hdr[d->nhdr++] = p[0];
		if (d->nhdr < 4)
			return 1;
		d->nhdr = 0;
		d->seg_left = get_be32(d->hdr);
		if (d->seg_left == 0)
			d->ended = 1;
		else if (d->seg_left > BF_SEG_MAX) {
			bframe_dec_fail(d, "segment longer than 65536 bytes");
			d->ended = 1; /* the outer framing is lost: nothing to skip to */
		}
		return 1;
	}
	take = n < d->seg_left ? n : d->seg_left;
	if (d->error)
		used = take;
	else
		dec_inflate(d, p, take, &used);
	d->seg_left -= used;
	return used;
}

int bframe_dec_feed(struct bframe_dec *d, const unsigned char *p, size_t n, size_t *used)
{
	size_t k;

	*used = 0;
	dec_compact(d);
	while (*used < n && !d->ended) {
		k = dec_step(d, p + *used, n - *used);
		if (k == 0)
			break;
		*used += k;
	}
	return d->ended ? BFD_ENDED : BFD_MORE;
}

int bframe_dec_next(struct bframe_dec *d, struct bframe_rec *r)
{
	size_t avail = d->out.len - d->out_off;
	const unsigned char *s;
	uint32_t len;

	if (d->error)
		return -1;
	if (d->batch_end) {
		if (avail > 0)
			bframe_dec_fail(d, "data after the batch end record");
		return d->error ? -1 : 0;
	}
	if (avail < BF_HDR)
		return 0;
	s = (const unsigned char *)d->out.data + d->out_off;
	len = get_be32(s + 1);
	if (len > BF_REC_MAX) {
		bframe_dec_fail(d, "record longer than the limit");
		return -1;
	}
	if (avail < BF_HDR + (size_t)len + 4)
		return 0;
	if (bframe_crc32(0, s, BF_HDR + len) != get_be32(s + BF_HDR + len)) {
		bframe_dec_fail(d, "record checksum mismatch");
		return -1;
	}
	r->type = s[0];
	r->data = (const char *)s + BF_HDR;
	r->len = len;
	d->out_off += BF_HDR + len + 4;
	if (r->type == BF_BATCH_END)
		d->batch_end = 1;
	return 1;
}
