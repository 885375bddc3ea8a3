/* What the status page reads and writes: the queue sample ring
 * (daemon/samples.c) keeps the newest SAMPLES_MAX samples in time order
 * across the wrap and starts a foreign file afresh; the Prometheus text of
 * daemon/metrics.c escapes label values; a period of a long ledger is
 * found without reading it all (dialup/ledger.c) and drawn the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "status/history.h"
#include "status/metrics.h"
#include "status/queue_summary.h"
#include "status/samples.h"
#include "dialup/ledger.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "test_tmp.h"

static void test_ring_wraps_and_keeps_the_newest(void **state)
{
	char dir[TEST_TMP_MAX];
	struct sample *v;
	size_t n;

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "dialmail-samples"));
	assert_int_equal(samples_read(dir, 0, 1L << 40, &v), 0);
	free(v);
	for (unsigned i = 1; i <= SAMPLES_MAX + 5; i++) {
		struct sample s = {(time_t)(1000 + i), i, i / 2};
		assert_int_equal(samples_append(dir, &s), 0);
	}
	n = samples_read(dir, 0, 1L << 40, &v);
	assert_int_equal(n, SAMPLES_MAX);
	assert_int_equal(v[0].messages, 6); /* 1..5 overwritten */
	assert_int_equal(v[n - 1].messages, SAMPLES_MAX + 5);
	for (size_t i = 1; i < n; i++)
		assert_true(v[i].at > v[i - 1].at);
	free(v);
	n = samples_read(dir, 1000 + 100, 1000 + 109, &v); /* a window */
	assert_int_equal(n, 10);
	assert_int_equal(v[0].for_link, 50);
	free(v);
	test_tmp_rm(dir);
}

static void test_foreign_file_is_started_afresh(void **state)
{
	char dir[TEST_TMP_MAX], path[TEST_TMP_MAX + 32];
	struct sample s = {5000, 7, 1}, *v;

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "dialmail-samples"));
	snprintf(path, sizeof(path), "%s/queue.samples", dir);
	assert_int_equal(fs_write_atomic(path, "not a ring at all, no", 21, 0644), 0);
	assert_int_equal(samples_read(dir, 0, 1L << 40, &v), 0);
	free(v);
	assert_int_equal(samples_append(dir, &s), 0);
	assert_int_equal(samples_read(dir, 0, 1L << 40, &v), 1);
	assert_int_equal(v[0].messages, 7);
	free(v);
	test_tmp_rm(dir);
}

static void test_metrics_text_escapes_labels(void **state)
{
	char dir[TEST_TMP_MAX];
	struct queue_summary q;
	struct metrics_view mv = {.queue = &q, .now = 100};
	struct buf out = BUF_INIT;
	struct metrics *mx;

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "dialmail-metrics"));
	memset(&q, 0, sizeof(q));
	q.messages = q.by_state[QS_LINK] = 3;
	q.n_routes = 1;
	q.route[0].messages = 3;
	snprintf(q.route[0].name, sizeof(q.route[0].name), "we\"ird\\link");
	q.oldest = 40;
	mx = metrics_new(dir);
	metrics_on_track(TRK_RECEIVED, mx);
	metrics_on_track(TRK_DELIVERED_LOCAL, mx);
	metrics_render(mx, &mv, &out);
	assert_non_null(strstr(buf_cstr(&out),
			       "dialmail_queue_route_messages{route=\"we\\\"ird\\\\link\"} 3\n"));
	assert_non_null(strstr(buf_cstr(&out), "dialmail_queue_messages{state=\"link\"} 3\n"));
	assert_non_null(strstr(buf_cstr(&out), "dialmail_queue_oldest_message_age_seconds 60\n"));
	assert_non_null(strstr(buf_cstr(&out), "dialmail_received_recipients_total 1\n"));
	assert_non_null(
	    strstr(buf_cstr(&out), "dialmail_delivered_recipients_total{where=\"local\"} 1\n"));
	assert_non_null(strstr(buf_cstr(&out), "# TYPE dialmail_sessions_total counter\n"));
	metrics_free(mx);
	buf_free(&out);
	test_tmp_rm(dir);
}

/* 20000 hourly sessions, one BUSY then connected each. */
static void write_ledger(const char *dir, time_t t0)
{
	char path[TEST_TMP_MAX + 32], a[64], b[64];
	struct buf text = BUF_INIT;

	for (int i = 0; i < 20000; i++) {
		clock_iso8601((int64_t)(t0 + 3600 * i) * 1000000, a, sizeof(a));
		clock_iso8601((int64_t)(t0 + 3600 * i + 5) * 1000000, b, sizeof(b));
		buf_printf(&text,
			   "{\"start\":\"%s\",\"result\":\"ok\",\"attempts\":[{\"cause\":\"busy\","
			   "\"time\":\"%s\"},{\"cause\":\"connected\",\"time\":\"%s\"}],"
			   "\"entry\":\"isp\",\"dial_seconds\":6.0,\"connect_seconds\":60.0}\n",
			   a, a, b);
	}
	snprintf(path, sizeof(path), "%s/log", dir);
	assert_int_equal(fs_mkdirs(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/log/sessions.jsonl", dir);
	assert_int_equal(fs_write_atomic(path, text.data, text.len, 0644), 0);
	buf_free(&text);
}

static void test_period_of_a_long_ledger(void **state)
{
	char dir[TEST_TMP_MAX];
	time_t t0 = 1700000000, from = t0 + 3600 * 19000 + 1800;
	struct history h;
	long long off;

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "dialmail-ledger"));
	write_ledger(dir, t0);
	off = ledger_offset_before(dir, from - 86400);
	assert_true(off > 4000000); /* most of the 4.7 MB is skipped */
	history_load(&h, dir, from, t0 + 3600 * 20000);
	assert_int_equal(h.n_ses, 1000 - 1); /* sessions 19001..19999 */
	assert_int_equal(h.n_att, 2 * (1000 - 1));
	assert_int_equal(h.ok, 999);
	assert_string_equal(h.cause[0].name, "busy");
	history_free(&h);
	assert_int_equal(ledger_offset_before(dir, t0), 0);
	test_tmp_rm(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ring_wraps_and_keeps_the_newest),
	    cmocka_unit_test(test_foreign_file_is_started_afresh),
	    cmocka_unit_test(test_metrics_text_escapes_labels),
	    cmocka_unit_test(test_period_of_a_long_ledger),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
