/* Unit tests of src/smtp/smtp_client.c: the reply parser, the EHLO
 * capability parser, dot-stuffing, the transaction planner (where the
 * client must wait), and one whole session over a socketpair against a
 * tiny scripted server, through smtpc_start_fd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/buf.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"
#include "smtp/smtp_client.h"

static int feed(struct smtpc_reply *r, const char *line)
{
	return smtpc_reply_line(r, line, strlen(line));
}

static void test_reply_parser(void **state)
{
	struct smtpc_reply r = {0, BUF_INIT};

	assert_int_equal(feed(&r, "250-mx.example"), 0);
	assert_int_equal(feed(&r, "250-PIPELINING"), 0);
	assert_int_equal(feed(&r, "250 CHUNKING"), 1);
	assert_int_equal(r.code, 250);
	assert_string_equal(buf_cstr(&r.text), "250-mx.example\n250-PIPELINING\n250 CHUNKING");
	buf_reset(&r.text);
	assert_int_equal(feed(&r, "354"), 1); /* bare code is a complete reply */
	assert_int_equal(r.code, 354);
	buf_reset(&r.text);
	assert_int_equal(feed(&r, "250-a"), 0);
	assert_int_equal(feed(&r, "251 b"), -1); /* code changes mid-reply */
	assert_int_equal(feed(&r, "hello"), -1);
	assert_int_equal(feed(&r, "25"), -1);
	assert_int_equal(feed(&r, "250x"), -1);
	assert_int_equal(feed(&r, "650 no such class"), -1);
	assert_int_equal(feed(&r, "421 4.3.2 bye"), 1);
	assert_int_equal(r.code, 421);
	buf_free(&r.text);
}

static void test_caps_parser(void **state)
{
	struct smtpc_caps c;

	smtpc_caps_parse(&c, "250-mx.example greets you\n250-PIPELINING\n250-SIZE 10240000\n"
			     "250-auth login Plain\n250-8BITMIME\n250-STARTTLS\n250 CHUNKING");
	assert_true(c.pipelining && c.chunking && c.starttls && c.eightbitmime);
	assert_true(c.auth_plain && c.auth_login && c.has_size);
	assert_int_equal(c.size, 10240000);
	/* the greeting line is not a keyword; bare SIZE means no fixed limit */
	smtpc_caps_parse(&c, "250-PIPELINING is my name\n250 SIZE");
	assert_false(c.pipelining);
	assert_true(c.has_size);
	assert_int_equal(c.size, 0);
	smtpc_caps_parse(&c, "250 mx.example");
	assert_false(c.pipelining || c.chunking || c.has_size || c.auth_plain);
	smtpc_caps_parse(&c, "250-x\n250-AUTH=LOGIN\n250 PIPELININGX");
	assert_true(c.auth_login);
	assert_false(c.pipelining);
	/* XDMBATCH: version and dictionary; without parameters it is not usable */
	smtpc_caps_parse(&c, "250-x\n250-XDMBATCH 1 DICT=1\n250 DSN");
	assert_int_equal(c.xdmbatch, 1);
	assert_int_equal(c.xdmbatch_dict, 1);
	smtpc_caps_parse(&c, "250-x\n250-XDMBATCH 2\n250 DSN");
	assert_int_equal(c.xdmbatch, 2);
	assert_int_equal(c.xdmbatch_dict, 0);
	smtpc_caps_parse(&c, "250-x\n250 XDMBATCH");
	assert_int_equal(c.xdmbatch, 0);
}

static void test_dot_stuff(void **state)
{
	struct buf b = BUF_INIT;
	const char *in = ".a\r\nb\r\n..c\r\n.\r\n";

	smtpc_dot_stuff(&b, in, strlen(in));
	assert_string_equal(b.data, "..a\r\nb\r\n...c\r\n..\r\n.\r\n");
	buf_reset(&b);
	smtpc_dot_stuff(&b, "no newline", 10);
	assert_string_equal(b.data, "no newline\r\n.\r\n");
	buf_reset(&b);
	smtpc_dot_stuff(&b, "", 0);
	assert_string_equal(b.data, ".\r\n");
	buf_free(&b);
	assert_false(smtpc_is_8bit("plain\r\n", 7));
	assert_true(smtpc_is_8bit("caf\xc3\xa9", 5));
}

/* Two messages of two recipients each, content sizes 100 and 5000. */
struct fixture {
	struct q_env env[2];
	struct buf content[2];
	struct smtpc_msg msgs[2];
	struct event_base *base;
};

static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < 2; i++) {
		snprintf(f->env[i].id, sizeof(f->env[i].id), "MSG%d", i);
		f->env[i].sender = xstrdup("a@branch.example");
		q_env_add_rcpt(&f->env[i], "x@remote.example");
		q_env_add_rcpt(&f->env[i], "bad@remote.example");
		buf_init(&f->content[i]);
		for (size_t k = 0; k < (i ? 5000u : 100u); k += 10)
			buf_puts(&f->content[i], "123456789\n");
		f->msgs[i].env = &f->env[i];
		f->msgs[i].content = &f->content[i];
	}
	f->base = event_base_new();
}

static void fixture_free(struct fixture *f)
{
	for (int i = 0; i < 2; i++) {
		q_env_free(&f->env[i]);
		buf_free(&f->content[i]);
	}
	event_base_free(f->base);
}

static void noop_done(struct smtpc *c, const struct smtpc_session_result *r, void *arg)
{
}

static size_t count_barriers(const struct smtpc_step *s, size_t n, int pipelining)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += smtpc_cmd_barrier(s[i].cmd, pipelining);
	return k;
}

static void test_plan(void **state)
{
	struct smtpc_options o = {.helo_name = "me"};
	struct smtpc_caps caps = {.pipelining = 1, .chunking = 1};
	struct smtpc_step *s;
	struct fixture f;
	struct smtpc *c;
	size_t n;

	fixture_init(&f);
	c = smtpc_new(f.base, &o, f.msgs, 2, noop_done, NULL);
	n = smtpc_plan(c, &caps, &s);
	/* MAIL RCPT RCPT BDAT, RSET MAIL RCPT RCPT BDAT, QUIT: no barrier at all */
	assert_int_equal(n, 10);
	assert_int_equal(s[3].cmd, SC_BDAT);
	assert_int_equal(s[4].cmd, SC_RSET);
	assert_int_equal(s[9].cmd, SC_QUIT);
	assert_int_equal(count_barriers(s, n, 1), 0);
	free(s);
	smtpc_free(c);

	o.no_chunking = 1; /* DATA: one wait per message */
	c = smtpc_new(f.base, &o, f.msgs, 2, noop_done, NULL);
	n = smtpc_plan(c, &caps, &s);
	assert_int_equal(n, 12);
	assert_int_equal(count_barriers(s, n, 1), 2);
	assert_int_equal(count_barriers(s, n, 0), n);
	free(s);
	smtpc_free(c);

	/* SIZE: the second message is refused without being planned */
	o.no_chunking = 0;
	caps.has_size = 1;
	caps.size = 1000;
	c = smtpc_new(f.base, &o, f.msgs, 2, noop_done, NULL);
	n = smtpc_plan(c, &caps, &s);
	assert_int_equal(n, 5);
	assert_int_equal(f.msgs[1].status, Q_PERMFAIL);
	assert_non_null(strstr(f.msgs[1].res[1].reply, "exceeds the server's SIZE limit of 1000"));
	assert_false(f.msgs[1].attempted);
	free(s);
	smtpc_free(c);

	/* max_messages = 1 and a recipient subset */
	size_t only[] = {1};
	caps.has_size = 0;
	o.max_messages = 1;
	f.msgs[0].rcpt_idx = only;
	f.msgs[0].nrcpt_idx = 1;
	c = smtpc_new(f.base, &o, f.msgs, 2, noop_done, NULL);
	n = smtpc_plan(c, &caps, &s);
	assert_int_equal(n, 4); /* MAIL RCPT BDAT QUIT */
	assert_int_equal(f.msgs[0].nres, 1);
	assert_int_equal(f.msgs[1].status, Q_TEMPFAIL);
	assert_non_null(strstr(f.msgs[1].reply, "maximum messages"));
	free(s);
	smtpc_free(c);
	fixture_free(&f);
}

/* ---- a whole session over a socketpair */

struct fake {
	struct bufferevent *bev;
	size_t bdat_left;
	int quit;
	struct buf wire; /* what the client sent */
	const struct smtpc_session_result *res;
	int done;
	struct smtpc_session_result copy;
};

static void fake_line(struct fake *fk, struct evbuffer *out, const char *line)
{
	if (!strncmp(line, "EHLO", 4))
		evbuffer_add_printf(out, "250-fake\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
	else if (!strncmp(line, "RCPT TO:<bad", 12))
		evbuffer_add_printf(out, "550 5.1.1 no\r\n");
	else if (!strncmp(line, "BDAT ", 5)) {
		fk->bdat_left = strtoul(line + 5, NULL, 10);
		return;
	} else if (!strcmp(line, "QUIT")) {
		evbuffer_add_printf(out, "221 bye\r\n");
		fk->quit = 1;
	} else
		evbuffer_add_printf(out, "250 ok\r\n");
}

static void fake_read(struct bufferevent *bev, void *arg)
{
	struct fake *fk = arg;
	struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
	size_t len;
	char *line;

	for (;;) {
		if (fk->bdat_left) {
			size_t n = evbuffer_get_length(in);

			n = n < fk->bdat_left ? n : fk->bdat_left;
			buf_reserve(&fk->wire, n);
			evbuffer_remove(in, fk->wire.data + fk->wire.len, n);
			fk->wire.len += n;
			fk->wire.data[fk->wire.len] = '\0';
			if ((fk->bdat_left -= n) > 0)
				return;
			evbuffer_add_printf(out, "250 2.0.0 queued\r\n");
		}
		if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF_STRICT)) == NULL)
			return;
		buf_printf(&fk->wire, "%s\n", line);
		fake_line(fk, out, line);
		free(line);
	}
}

static void session_done(struct smtpc *c, const struct smtpc_session_result *r, void *arg)
{
	struct fake *fk = arg;

	fk->done++;
	fk->copy = *r;
	event_base_loopexit(bufferevent_get_base(fk->bev), NULL);
}

static void test_session_over_socketpair(void **state)
{
	struct smtpc_options o = {.helo_name = "me", .max_messages = 0};
	struct fake fk = {0};
	struct fixture f;
	struct smtpc *c;
	int sv[2];

	fixture_init(&f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fk.bev = bufferevent_socket_new(f.base, sv[1], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(fk.bev, fake_read, NULL, NULL, &fk);
	bufferevent_enable(fk.bev, EV_READ | EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(fk.bev), "220 fake.example ESMTP\r\n");
	c = smtpc_new(f.base, &o, f.msgs, 2, session_done, &fk);
	assert_int_equal(smtpc_start_fd(c, sv[0]), 0);
	assert_int_equal(fk.done, 0); /* never from inside start */
	event_base_dispatch(f.base);
	assert_int_equal(fk.done, 1);
	assert_int_equal(fk.copy.cause, SMTPC_OK);
	assert_string_equal(fk.copy.remote_mta, "fake.example");
	assert_int_equal(fk.copy.waits, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(f.msgs[i].res[0].status, Q_OK);
		assert_int_equal(f.msgs[i].res[1].status, Q_PERMFAIL);
		assert_string_equal(f.msgs[i].res[1].reply, "550 5.1.1 no");
		assert_int_equal(f.msgs[i].status, Q_TEMPFAIL); /* mixed */
		assert_true(f.msgs[i].data_sent);
	}
	assert_true(fk.quit);
	assert_non_null(strstr(fk.wire.data, "MAIL FROM:<a@branch.example>\nRCPT TO:<x@"));
	smtpc_free(c);
	bufferevent_free(fk.bev);
	buf_free(&fk.wire);
	fixture_free(&f);
}

static void test_bad_hostport(void **state)
{
	struct smtpc_options o = {.helo_name = "me"};
	struct fixture f;
	struct smtpc *c;

	fixture_init(&f);
	c = smtpc_new(f.base, &o, f.msgs, 2, noop_done, NULL);
	assert_int_equal(smtpc_connect(c, "mail.example:25"), -1); /* no DNS here */
	assert_int_equal(smtpc_connect(c, "127.0.0.1"), -1);	   /* no port */
	smtpc_free(c);
	assert_string_equal(smtpc_cause_name(SMTPC_BANNER_TIMEOUT), "banner-timeout");
	assert_string_equal(smtpc_cause_name(SMTPC_PROTOCOL_ERROR), "protocol-error");
	fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_parser),
	    cmocka_unit_test(test_caps_parser),
	    cmocka_unit_test(test_dot_stuff),
	    cmocka_unit_test(test_plan),
	    cmocka_unit_test(test_session_over_socketpair),
	    cmocka_unit_test(test_bad_hostport),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
