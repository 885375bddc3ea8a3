/* Fuzzes the XDMBATCH framing (smtp/batch_frame.c). The first byte picks
 * the mode. Even: the rest is wire bytes from a peer, read with dictionary
 * 1 (bit 1 clear) or none, fed in pieces of a size taken from the second
 * byte; records must have sane lengths and the decoder must stop. Odd: the
 * rest is records separated by LF, encoded and decoded again; the records
 * must come back byte for byte, in order. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lib/buf.h"
#include "smtp/batch_frame.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void decode_wire(const uint8_t *p, size_t n, int dict, size_t step)
{
	struct bframe_dec *d = bframe_dec_new(dict);
	struct bframe_rec r;
	size_t off = 0, used;

	for (;;) {
		size_t k = n - off < step ? n - off : step;
		int st = bframe_dec_feed(d, p + off, k, &used), rc;

		off += used;
		while ((rc = bframe_dec_next(d, &r)) == 1)
			if (r.len > BF_REC_MAX)
				abort();
		if (rc < 0 && bframe_dec_error(d) == NULL)
			abort();
		if (st == BFD_ENDED || (used == 0 && (off == n || rc <= 0)))
			break;
	}
	bframe_dec_free(d);
}

static void roundtrip(const uint8_t *p, size_t n)
{
	struct bframe_enc *e = bframe_enc_new(BF_DICT_VERSION);
	struct bframe_dec *d = bframe_dec_new(BF_DICT_VERSION);
	struct buf wire = BUF_INIT, in = BUF_INIT, out = BUF_INIT;
	struct bframe_rec r;
	size_t off = 0, used;
	int flush = 0;

	for (const uint8_t *s = p, *end = p + n; s <= end;) {
		const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);

		if (bframe_enc_put(e, BF_DATA, s, len, flush++ % 3 == 0, &wire) < 0)
			abort();
		buf_append(&in, s, len);
		buf_putc(&in, '|');
		s += len + 1;
	}
	if (bframe_enc_finish(e, &wire) < 0)
		abort();
	while (bframe_dec_feed(d, (const unsigned char *)wire.data + off, wire.len - off, &used) !=
	       BFD_ENDED) {
		off += used;
		while (bframe_dec_next(d, &r) == 1)
			if (r.type == BF_DATA) {
				buf_append(&out, r.data, r.len);
				buf_putc(&out, '|');
			}
		if (used == 0 && bframe_dec_error(d))
			abort();
	}
	while (bframe_dec_next(d, &r) == 1)
		if (r.type == BF_DATA) {
			buf_append(&out, r.data, r.len);
			buf_putc(&out, '|');
		}
	if (bframe_dec_error(d) || !bframe_dec_batch_end(d) || in.len != out.len ||
	    memcmp(in.data, out.data, in.len) != 0)
		abort();
	bframe_enc_free(e);
	bframe_dec_free(d);
	buf_free(&wire);
	buf_free(&in);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (data[0] & 1)
		roundtrip(data + 1, size - 1);
	else
		decode_wire(data + 2, size - 2, data[0] & 2 ? 0 : BF_DICT_VERSION,
			    (size_t)data[1] + 1);
	return 0;
}
