/* Parallel connections towards a server without CHUNKING
 * (outbound_parallel): as many as keep the link busy while each waits a
 * round trip per message, i.e. 1 + ceil(bandwidth-delay product / mean
 * message size), never more than the cap, the cap when a figure is unknown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "deliver/outbound.h"

static void test_unknown_figures_give_the_cap(void **state)
{
	assert_int_equal(outbound_parallel(4, 0, 200000, 3000), 4);	    /* bandwidth */
	assert_int_equal(outbound_parallel(4, 33600, 0, 3000), 4);	    /* round trip */
	assert_int_equal(outbound_parallel(4, 33600, 600000, 0), 4);	    /* sizes */
	assert_int_equal(outbound_parallel(1, 100000000, 200000, 3000), 1); /* cap 1 */
}

static void test_bandwidth_delay_product(void **state)
{
	/* Iridium: 2400 bit/s, 3 s round trip: 900 bytes in flight, 3 KB messages */
	assert_int_equal(outbound_parallel(8, 2400, 3000000, 3072), 2);
	/* V.34: 33600 bit/s, 600 ms: 2520 bytes; 3 KB messages: 2; 1 KB: 4 */
	assert_int_equal(outbound_parallel(8, 33600, 600000, 3072), 2);
	assert_int_equal(outbound_parallel(8, 33600, 600000, 1000), 4);
	/* BGAN: 256 kbit/s, 1 s: 32000 bytes; 3 KB messages: 12, capped at 8 */
	assert_int_equal(outbound_parallel(8, 256000, 1000000, 3072), 8);
	assert_int_equal(outbound_parallel(20, 256000, 1000000, 3072), 12);
	/* a large message fills the pipe alone: one connection waits, one sends */
	assert_int_equal(outbound_parallel(8, 256000, 1000000, 250000), 2);
	/* 10 Mbit/s, 200 ms: 250 KB in flight: the cap */
	assert_int_equal(outbound_parallel(4, 10000000, 200000, 3072), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unknown_figures_give_the_cap),
	    cmocka_unit_test(test_bandwidth_delay_product),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
