/* The NO CARRIER watch of a modem line: the words split across reads still
 * count, more bytes after them cancel the verdict (even in the next read)
 * unless they are the modem's echo of ours,
 * silence confirms it, and near misses never fire. Runs a real libevent loop (the quiet time is
 * 1.5 s of monotonic time). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "link/carrier_watch.h"

static int fired;

static void on_fired(evutil_socket_t fd, short what, void *arg)
{
	fired++;
	event_base_loopbreak(arg);
}

/* Feeds each piece as one read would, then runs the loop for wait_ms. */
static void feed(struct carrier_watch *w, struct event_base *base, const char *const *pieces,
		 int wait_ms)
{
	struct evbuffer *in = evbuffer_new();
	struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};

	for (size_t i = 0; pieces[i]; i++) {
		evbuffer_add(in, pieces[i], strlen(pieces[i]));
		carrier_watch_feed(w, in);
		evbuffer_drain(in, evbuffer_get_length(in));
	}
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	evbuffer_free(in);
}

static void test_split_words_then_silence_fire(void **state)
{
	struct event_base *base = event_base_new();
	struct carrier_watch w;
	const char *pieces[] = {"250 ok\r\n\r\nNO CAR", "RIER\r\n", NULL};

	fired = 0;
	carrier_watch_init(&w, base, on_fired, base);
	feed(&w, base, pieces, 3000);
	assert_int_equal(fired, 1);
	carrier_watch_free(&w);
	event_base_free(base);
}

static void test_data_after_the_words_cancels(void **state)
{
	struct event_base *base = event_base_new();
	struct carrier_watch w;
	const char *pieces[] = {"a line: NO CARRIER\r\n", "more data follows\r\n", NULL};

	fired = 0;
	carrier_watch_init(&w, base, on_fired, base);
	feed(&w, base, pieces, 2000);
	assert_int_equal(fired, 0);
	carrier_watch_free(&w);
	event_base_free(base);
}

static void test_near_misses_never_fire(void **state)
{
	struct event_base *base = event_base_new();
	struct carrier_watch w;
	const char *pieces[] = {"NO CARR", "", "IAGE\r\n", "NO  CARRIER\r\n", NULL};

	fired = 0;
	carrier_watch_init(&w, base, on_fired, base);
	feed(&w, base, pieces, 1800);
	assert_int_equal(fired, 0);
	carrier_watch_arm(&w, 100); /* an expected end: fires without the words */
	feed(&w, base, (const char *const[]){NULL}, 1000);
	assert_int_equal(fired, 1);
	carrier_watch_free(&w);
	event_base_free(base);
}

/* A modem back in command state echoes what the dialer still writes: the
 * echo after NO CARRIER is no data, other bytes are. */
static void test_echo_of_our_bytes_does_not_cancel(void **state)
{
	struct event_base *base = event_base_new();
	struct evbuffer *out = evbuffer_new();
	struct carrier_watch w;
	const char *echo[] = {"\r\nNO CARRIER\r\n", "A 0661FB.9eff7d6b 0661", "FB8F3AF\r", NULL};
	const char *data[] = {"\r\nNO CARRIER\r\n", "A 0661FB.9eff7d6b 0661 and more", NULL};

	fired = 0;
	carrier_watch_init(&w, base, on_fired, base);
	carrier_watch_output(&w, out);
	evbuffer_add_printf(out, "A 0661FB.9eff7d6b 0661FB8F3AF\r\n");
	feed(&w, base, echo, 3000);
	assert_int_equal(fired, 1);
	fired = 0;
	feed(&w, base, data, 2000);
	assert_int_equal(fired, 0);
	carrier_watch_free(&w);
	evbuffer_free(out);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split_words_then_silence_fire),
	    cmocka_unit_test(test_data_after_the_words_cancels),
	    cmocka_unit_test(test_near_misses_never_fire),
	    cmocka_unit_test(test_echo_of_our_bytes_does_not_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
