/* SMTP server limits: the per-client table (smtp/anvil.c) counts concurrent
 * connections, connections and messages per minute, warns at most once a
 * minute per client and stays bounded (fake clock); an adopted session (the
 * far end of a dial-up line) is not cut by smtp_min_data_rate or
 * smtp_max_session_time (real event loop over a socket pair, about 11 s);
 * no reply line is longer than RFC 5321 allows, whatever a hook returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "daemon/modules.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "mail/config.h"
#include "mail/event.h"
#include "queue/queue.h"
#include "smtp/anvil.h"
#include "smtp/smtp_server.h"
#include "test_tmp.h"

#define T0 1700000000LL

static void test_anvil_counts(void **state)
{
	struct anvil *a = anvil_new(8);
	struct anvil_client *c[3];
	int conns, rate, suppressed = -1;

	for (int i = 0; i < 3; i++) {
		c[i] = anvil_connect(a, "192.0.2.1", T0, &conns, &rate);
		assert_int_equal(conns, i + 1);
		assert_int_equal(rate, i + 1);
	}
	assert_ptr_equal(c[0], c[2]);
	anvil_connect(a, "192.0.2.2", T0, &conns, &rate);
	assert_int_equal(conns, 1); /* another client counts apart */
	anvil_disconnect(c[0], T0 + 1);
	anvil_connect(a, "192.0.2.1", T0 + 59, &conns, &rate);
	assert_int_equal(conns, 3);
	assert_int_equal(rate, 4);
	anvil_connect(a, "192.0.2.1", T0 + 60, &conns, &rate);
	assert_int_equal(rate, 1); /* a new minute */
	assert_int_equal(anvil_message(c[0], T0 + 60), 1);
	assert_int_equal(anvil_message(c[0], T0 + 61), 2);
	assert_int_equal(anvil_message(c[0], T0 + 121), 1);
	/* Warned once a minute; the refusals in between are counted. */
	assert_int_equal(anvil_warn(c[0], T0, &suppressed), 1);
	assert_int_equal(suppressed, 0);
	assert_int_equal(anvil_warn(c[0], T0 + 10, &suppressed), 0);
	assert_int_equal(anvil_warn(c[0], T0 + 59, &suppressed), 0);
	assert_int_equal(anvil_warn(c[0], T0 + 60, &suppressed), 1);
	assert_int_equal(suppressed, 2);
	anvil_free(a);
}

static void test_anvil_bounded(void **state)
{
	struct anvil *a = anvil_new(4);
	struct anvil_client *held;
	char key[32];
	int conns, rate;

	held = anvil_connect(a, "198.51.100.1", T0, &conns, &rate);
	for (int i = 0; i < 100; i++) { /* a flood of addresses, each gone at once */
		snprintf(key, sizeof(key), "203.0.113.%d", i);
		anvil_disconnect(anvil_connect(a, key, T0 + i, &conns, &rate), T0 + i);
		assert_int_equal(conns, 1);
	}
	assert_true(anvil_size(a, T0 + 100) <= 4);
	/* The entry with an open connection was never evicted. */
	assert_ptr_equal(anvil_connect(a, "198.51.100.1", T0 + 100, &conns, &rate), held);
	assert_int_equal(conns, 2);
	anvil_disconnect(held, T0 + 100);
	anvil_disconnect(held, T0 + 100);
	/* Quiet for a minute: forgotten. */
	assert_int_equal(anvil_size(a, T0 + 300), 0);
	anvil_free(a);
}

struct adopted {
	int closed;
};

static void adopted_closed(int quit, void *arg)
{
	((struct adopted *)arg)->closed = 1;
}

/* Runs the loop for ms milliseconds. */
static void run_ms(struct event_base *base, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Everything the server wrote to fd so far, appended to out. */
static void drain(int fd, struct buf *out)
{
	char b[4096];
	ssize_t n;

	while ((n = recv(fd, b, sizeof(b), MSG_DONTWAIT)) > 0)
		buf_append(out, b, (size_t)n);
}

static void test_adopted_session_not_cut_by_rate_or_lifetime(void **state)
{
	char dir[TEST_TMP_MAX];
	struct config cfg;
	struct buf err = {0}, got = {0};
	struct adopted ad = {0};
	struct event_base *base = event_base_new();
	struct queue *q;
	struct smtp_server *srv;
	struct bufferevent *bev;
	int sv[2];

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "smtp-server"));
	assert_int_equal(event_open(dir, NULL, 0), 0);
	assert_int_equal(config_load(&cfg, NULL, &err), 0);
	cfg.smtp_min_data_rate = 1000000; /* nobody on a modem line reaches this */
	cfg.smtp_max_session_time = 1;
	cfg.smtp_timeout = 30;
	cfg.smtp_data_timeout = 30;
	q = queue_open(dir);
	assert_non_null(q);
	srv = smtp_server_new(base, &cfg, q, NULL, NULL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	evutil_make_socket_nonblocking(sv[0]);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	smtp_server_adopt(srv, bev, "branch.example", 0, adopted_closed, &ad);
	const char *start = "EHLO hub.example\r\nMAIL FROM:<a@hub.example>\r\n"
			    "RCPT TO:<postmaster>\r\nDATA\r\nSubject: slow line\r\n\r\n";
	assert_int_equal(write(sv[1], start, strlen(start)), (ssize_t)strlen(start));
	/* 23 half-seconds of one octet each: two rate windows, 11 lifetimes. */
	for (int i = 0; i < 23; i++) {
		run_ms(base, 500);
		send(sv[1], "x", 1, MSG_NOSIGNAL); /* fails once cut: checked below */
	}
	run_ms(base, 200);
	drain(sv[1], &got);
	buf_append(&got, "", 1);
	assert_int_equal(ad.closed, 0);
	assert_null(strstr(got.data, "421"));
	assert_non_null(strstr(got.data, "354 "));
	assert_int_equal(smtp_server_sessions(srv), 1);
	smtp_server_free(srv); /* frees the session and bev */
	assert_int_equal(ad.closed, 1);
	close(sv[1]);
	queue_close(q);
	config_free(&cfg);
	event_close();
	event_base_free(base);
	buf_free(&err);
	buf_free(&got);
	test_tmp_rm(dir);
}

struct fixture {
	char dir[TEST_TMP_MAX];
	struct event_base *base;
	struct config cfg;
	struct queue *q;
	struct smtp_server *srv;
};

static int reply_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct buf err = BUF_INIT;
	int diag[EVC_COUNT] = {0};

	log_init("test_smtp_server", 0, 0);
	modules_register();
	assert_non_null(test_tmp_dir(f->dir, sizeof(f->dir), "test_smtp_server"));
	assert_int_equal(event_open(f->dir, diag, 0), 0);
	assert_int_equal(config_load(&f->cfg, NULL, &err), 0);
	f->base = event_base_new();
	f->q = queue_open(f->dir);
	assert_non_null(f->q);
	f->srv = smtp_server_new(f->base, &f->cfg, f->q, NULL, NULL);
	buf_free(&err);
	*state = f;
	return 0;
}

static int reply_teardown(void **state)
{
	struct fixture *f = *state;

	smtp_server_free(f->srv);
	queue_close(f->q);
	event_base_free(f->base);
	config_free(&f->cfg);
	event_close();
	test_tmp_rm(f->dir);
	free(f);
	return 0;
}

static void reply_closed(int quit, void *arg)
{
	*(int *)arg = 1;
}

/* Runs one session with input; its replies, as the client got them, in out. */
static void reply_session(struct fixture *f, const char *input, struct buf *out)
{
	struct bufferevent *pair[2];
	struct evbuffer *in;
	int done = 0;

	assert_int_equal(bufferevent_pair_new(f->base, 0, pair), 0);
	bufferevent_enable(pair[0], EV_READ | EV_WRITE);
	smtp_server_adopt(f->srv, pair[1], "192.0.2.1", 0, reply_closed, &done);
	bufferevent_write(pair[0], input, strlen(input));
	bufferevent_flush(pair[0], EV_WRITE, BEV_FINISHED);
	while (!done)
		event_base_loop(f->base, EVLOOP_ONCE);
	in = bufferevent_get_input(pair[0]);
	buf_append(out, (const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in));
	bufferevent_free(pair[0]);
}

/* An ETRN handler that quotes the argument in full, as hub_etrn does for
 * a "#queue" name or an argument that is no domain. */
static void etrn_quoting(const char *client, const char *user, const char *param, struct buf *reply,
			 void *arg)
{
	buf_printf(reply, "501 Syntax Error in Parameters: '%s' is not a domain", param);
}

/* Found by tests/fuzz/fuzz_smtp_server.c: a 500-octet ETRN argument came
 * back in a 555-octet reply line; a reply line is at most 512 with CRLF. */
static void test_reply_lines_fit_512(void **state)
{
	struct fixture *f = *state;
	struct buf in = BUF_INIT, out = BUF_INIT;
	const char *p, *crlf;
	size_t lines = 0;

	smtp_server_set_etrn(f->srv, etrn_quoting, NULL);
	buf_puts(&in, "EHLO client.example\r\nETRN ");
	for (int i = 0; i < 500; i++)
		buf_putc(&in, 'x');
	buf_puts(&in, "\r\nQUIT\r\n");
	reply_session(f, buf_cstr(&in), &out);
	assert_non_null(strstr(buf_cstr(&out), "\r\n501 Syntax Error in Parameters: 'xxx"));
	for (p = buf_cstr(&out); (crlf = strstr(p, "\r\n")) != NULL; p = crlf + 2, lines++)
		assert_true(crlf + 2 - p <= 512);
	assert_string_equal(p, ""); /* every reply ended in CRLF */
	assert_true(lines >= 4);    /* greeting, EHLO lines, ETRN, QUIT */
	assert_non_null(strstr(buf_cstr(&out), "\r\n221 "));
	buf_free(&in);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_anvil_counts),
	    cmocka_unit_test(test_anvil_bounded),
	    cmocka_unit_test(test_adopted_session_not_cut_by_rate_or_lifetime),
	    cmocka_unit_test_setup_teardown(test_reply_lines_fit_512, reply_setup, reply_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
