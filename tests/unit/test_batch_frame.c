/* Unit tests of src/smtp/batch_frame.c (docs/batch-protocol.md section 4):
 * records survive the trip through zstd and segments byte for byte, fed in
 * any pieces; a flipped byte, a truncated stream, an oversized segment and a
 * dictionary of another version are errors, never wrong records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>

#include "lib/buf.h"
#include "smtp/batch_duplex.h"
#include "smtp/batch_frame.h"

static const char hdr[] = "Received: from a.example (a.example [192.0.2.1])\r\n"
			  "\tby hub.example (dialmail) with ESMTP id 1\r\n"
			  "From: <alice@branch.example>\r\nSubject: test\r\n\r\nbody\r\n";

/* A batch: M, D (big, in pieces), E, Z; returns the wire bytes. */
static void make_batch(int dict, struct buf *out, struct buf *big)
{
	struct bframe_enc *e = bframe_enc_new(dict);

	assert_non_null(e);
	for (int i = 0; i < 5000; i++)
		buf_printf(big, "line %d of a long message %s\r\n", i, i % 7 ? "text" : hdr);
	assert_int_equal(bframe_enc_put(e, BF_MSG, "id1 5 0\r\nF <a@b>\r\n", 18, 0, out), 0);
	assert_int_equal(bframe_enc_put(e, BF_DATA, hdr, sizeof(hdr) - 1, 1, out), 0);
	for (size_t off = 0; off < big->len; off += 65536) {
		size_t n = big->len - off < 65536 ? big->len - off : 65536;
		assert_int_equal(bframe_enc_put(e, BF_DATA, big->data + off, n, 1, out), 0);
	}
	assert_int_equal(bframe_enc_put(e, BF_END, "id1 x", 5, 1, out), 0);
	assert_int_equal(bframe_enc_finish(e, out), 0);
	bframe_enc_free(e);
}

/* Feeds wire in pieces of step bytes; collects the records' bytes. Returns
 * the last bframe_dec_next result (-1 on error) and the records seen. */
static int decode(int dict, const struct buf *wire, size_t step, struct buf *got, int *nrec,
		  const char **err)
{
	struct bframe_dec *d = bframe_dec_new(dict);
	struct bframe_rec r;
	size_t off = 0, used;
	int rc = 0;

	assert_non_null(d);
	*nrec = 0;
	while (rc >= 0) {
		size_t n = wire->len - off < step ? wire->len - off : step;
		int st = bframe_dec_feed(d, (const unsigned char *)wire->data + off, n, &used);

		off += used;
		while ((rc = bframe_dec_next(d, &r)) == 1) {
			(*nrec)++;
			if (r.type == BF_DATA)
				buf_append(got, r.data, r.len);
		}
		if (st == BFD_ENDED || (used == 0 && off == wire->len))
			break;
	}
	if (rc == 0 && !bframe_dec_batch_end(d))
		rc = -2; /* the stream ended without Z */
	static char errbuf[256];

	*err = NULL;
	if (bframe_dec_error(d)) {
		snprintf(errbuf, sizeof(errbuf), "%s", bframe_dec_error(d));
		*err = errbuf;
	}
	bframe_dec_free(d);
	return rc;
}

static void test_roundtrip_any_pieces(void **state)
{
	static const size_t steps[] = {1, 3, 4096, 1 << 20};
	struct buf wire = BUF_INIT, big = BUF_INIT;

	make_batch(BF_DICT_VERSION, &wire, &big);
	assert_true(wire.len < big.len / 3);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct buf got = BUF_INIT;
		const char *err;
		int n;

		assert_int_equal(decode(BF_DICT_VERSION, &wire, steps[i], &got, &n, &err), 0);
		assert_null(err);
		assert_int_equal(n, 4 + (int)((big.len + 65535) / 65536));
		assert_int_equal(got.len, sizeof(hdr) - 1 + big.len);
		assert_memory_equal(got.data + sizeof(hdr) - 1, big.data, big.len);
		buf_free(&got);
	}
	buf_free(&wire);
	buf_free(&big);
}

static void test_no_dictionary(void **state)
{
	struct buf wire = BUF_INIT, big = BUF_INIT, got = BUF_INIT;
	const char *err;
	int n;

	make_batch(0, &wire, &big);
	assert_int_equal(decode(0, &wire, 777, &got, &n, &err), 0);
	assert_int_equal(got.len, sizeof(hdr) - 1 + big.len);
	assert_null(bframe_enc_new(99));
	assert_null(bframe_dec_new(99));
	buf_free(&wire);
	buf_free(&big);
	buf_free(&got);
}

/* Made with dictionary 1, read with none: zstd refuses (dictionary id). */
static void test_wrong_dictionary(void **state)
{
	struct buf wire = BUF_INIT, big = BUF_INIT, got = BUF_INIT;
	const char *err;
	int n;

	make_batch(BF_DICT_VERSION, &wire, &big);
	assert_int_equal(decode(0, &wire, 4096, &got, &n, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "decompression failed"));
	assert_int_equal(n, 0);
	buf_free(&wire);
	buf_free(&big);
	buf_free(&got);
}

/* Every flipped byte past the first segment header gives an error or the
 * right bytes; never other bytes. */
static void test_corrupt_bytes(void **state)
{
	struct buf wire = BUF_INIT, big = BUF_INIT;

	make_batch(BF_DICT_VERSION, &wire, &big);
	for (size_t pos = 4; pos < wire.len; pos += wire.len / 97 + 1) {
		struct buf got = BUF_INIT;
		const char *err;
		int n, rc;

		wire.data[pos] ^= 0x20;
		rc = decode(BF_DICT_VERSION, &wire, 8192, &got, &n, &err);
		wire.data[pos] ^= 0x20;
		if (rc == 0) {
			assert_int_equal(got.len, sizeof(hdr) - 1 + big.len);
			assert_memory_equal(got.data + sizeof(hdr) - 1, big.data, big.len);
		} else {
			assert_true(rc == -1 || rc == -2);
		}
		buf_free(&got);
	}
	buf_free(&wire);
	buf_free(&big);
}

static void test_truncated_and_oversized(void **state)
{
	struct buf wire = BUF_INIT, big = BUF_INIT, got = BUF_INIT, cut = BUF_INIT;
	static const unsigned char huge[] = {0x00, 0x01, 0x00, 0x01, 'x'};
	const char *err;
	int n;

	make_batch(BF_DICT_VERSION, &wire, &big);
	buf_append(&cut, wire.data, wire.len / 2);
	assert_int_equal(decode(BF_DICT_VERSION, &cut, 1000, &got, &n, &err), -2);
	buf_reset(&cut);
	buf_append(&cut, huge, sizeof(huge));
	assert_int_equal(decode(BF_DICT_VERSION, &cut, 1000, &got, &n, &err), -1);
	assert_string_equal(err, "segment longer than 65536 bytes");
	buf_free(&wire);
	buf_free(&big);
	buf_free(&got);
	buf_free(&cut);
}

static void test_ids_and_crc(void **state)
{
	assert_true(bframe_id_valid("0123abc.0f1e2d3c4b5a6978", 24));
	assert_false(bframe_id_valid("", 0));
	assert_false(bframe_id_valid("a b", 3));
	assert_false(bframe_id_valid("a/b", 3));
	assert_false(bframe_id_valid("a\0b", 3));
	assert_int_equal(bframe_crc32(0, "123456789", 9), 0xCBF43926u);
}

/* XDMBATCH DUPLEX (section 12): the command's words, the ack frame header. */
static void test_duplex_command_and_ack_frame(void **state)
{
	struct evbuffer *out = evbuffer_new();
	unsigned char h[4];
	char *doms, *ck;
	int dict = -1;

	assert_int_equal(batch_duplex_parse("DICT=1", &dict, &doms, &ck), 0);
	assert_int_equal(dict, 1);
	assert_null(doms);
	assert_int_equal(batch_duplex_parse("DICT=0 DUPLEX=a.example,b.example CKPT=x.1:16384",
					    &dict, &doms, &ck),
			 1);
	assert_int_equal(dict, 0);
	assert_string_equal(doms, "a.example,b.example");
	assert_string_equal(ck, "x.1:16384");
	free(doms);
	free(ck);
	assert_int_equal(batch_duplex_parse("DICT=1 DUPLEX=", &dict, &doms, &ck), 1);
	assert_string_equal(doms, "");
	assert_null(ck);
	free(doms);
	assert_int_equal(batch_duplex_parse("DUPLEX=a.example", &dict, &doms, &ck), -1);
	assert_int_equal(batch_duplex_parse("DICT=x DUPLEX", &dict, &doms, &ck), -1);
	bframe_ack_header(out, 42);
	assert_int_equal(evbuffer_remove(out, h, 4), 4);
	assert_memory_equal(h, "\x80\x00\x00\x2a", 4);
	evbuffer_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_any_pieces),
	    cmocka_unit_test(test_no_dictionary),
	    cmocka_unit_test(test_wrong_dictionary),
	    cmocka_unit_test(test_corrupt_bytes),
	    cmocka_unit_test(test_truncated_and_oversized),
	    cmocka_unit_test(test_ids_and_crc),
	    cmocka_unit_test(test_duplex_command_and_ack_frame),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
