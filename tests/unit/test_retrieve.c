/* Unit tests for the retrieval family (dialup/retrieve.c) and its one client
 * dialogue (dialup/retrieve_client.c): the table finds every method, each
 * [session] key reaches its method, check names what the chosen method
 * lacks, and the dialogue's bytes on a line for ATRN and TURN, refusals and
 * QUIT included. The dialogue runs on a bufferevent without a socket: what
 * it sends stays in the output buffer for the test to take. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "dialup/atrn.h"
#include "dialup/odmr_client.h"
#include "dialup/retrieve.h"
#include "dialup/retrieve_client.h"
#include "lib/buf.h"

static void test_table_finds_every_method(void **state)
{
	const char *names[] = {"none", "etrn", "command", "atrn", "turn"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct retrieval *m = retrieve_method(names[i]);
		assert_non_null(m);
		assert_string_equal(m->name, names[i]);
		assert_non_null(m->run);
	}
	assert_ptr_equal(retrieve_method("ETRN"), retrieve_method("etrn"));
	assert_null(retrieve_method("pop3"));
}

static int line(struct session_config *sc, const char *key, const char *value, struct buf *p)
{
	buf_reset(p);
	return retrieve_config_line(sc, key, value, p);
}

static void test_keys_reach_their_method(void **state)
{
	struct session_config sc;
	struct buf p = BUF_INIT;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	memset(&sc, 0, sizeof(sc));
	retrieve_config_defaults(&sc);
	assert_int_equal(sc.etrn_grace, 60);
	assert_int_equal(sc.retrieve_timeout, 120);
	assert_int_equal(line(&sc, "etrn_domains", "a.example, @b.example", &p), 0);
	assert_int_equal(line(&sc, "etrn_grace", "2m", &p), 0);
	assert_int_equal(line(&sc, "retrieve_command", "finger @isp", &p), 0);
	assert_int_equal(line(&sc, "retrieve_timeout", "30s", &p), 0);
	assert_int_equal(line(&sc, "atrn_domains", "branch.example", &p), 0);
	assert_int_equal(line(&sc, "atrn_tls", "required", &p), 0);
	assert_int_equal(line(&sc, "schedule", "off", &p), 1); /* not a retrieval key */
	assert_int_equal(line(&sc, "retrieve_timeout", "1m", &p), -1);
	assert_string_equal(buf_cstr(&p), "set twice in [session]");
	assert_int_equal(line(&sc, "etrn_domains", "c.example", &p), -1);
	assert_string_equal(buf_cstr(&p), "set twice in [session]");
	assert_int_equal(line(&sc, "atrn_host", "", &p), -1);
	assert_string_equal(buf_cstr(&p), "'' is not host[:port]");
	assert_int_equal(sc.etrn_grace, 120);
	assert_int_equal(sc.retrieve_timeout, 30);
	f = open_memstream(&out, &len);
	retrieve_show(&sc, f);
	fclose(f);
	assert_non_null(strstr(out, "retrieve_timeout = 30s\n"));
	assert_non_null(strstr(out, "etrn_domains = a.example, @b.example\netrn_grace = 2m\n"));
	assert_non_null(strstr(out, "retrieve_command = finger @isp\n"));
	assert_non_null(strstr(out, "atrn_domains = branch.example\n"));
	assert_non_null(strstr(out, "atrn_tls = required\n"));
	free(out);
	retrieve_config_free(&sc);
	buf_free(&p);
}

/* The messages that list methods and keys are made from the tables, so a
 * new method's name and keys appear in them without further edits. */
static void test_names_come_from_the_tables(void **state)
{
	struct buf names = BUF_INIT;

	retrieve_method_names(&names);
	assert_string_equal(buf_cstr(&names), "none, etrn, command, atrn, turn");
	buf_reset(&names);
	buf_puts(&names, "schedule");
	retrieve_config_names(&names);
	assert_string_equal(buf_cstr(&names),
			    "schedule, retrieve_timeout, etrn_domains, etrn_grace, "
			    "retrieve_command, atrn_host, atrn_domains, atrn_auth, atrn_tls, "
			    "atrn_ca, atrn_fingerprint");
	buf_free(&names);
}

/* The problem line of retrieve_check for method, or "" when there is none. */
static const char *check(struct config *cfg, struct session_config *sc, const char *method,
			 struct buf *err)
{
	buf_reset(err);
	sc->retrieve = (char *)method;
	retrieve_check(cfg, sc, "f.conf", err);
	return buf_cstr(err);
}

static void test_check_names_what_the_method_lacks(void **state)
{
	struct config cfg;
	struct session_config sc;
	struct buf err = BUF_INIT;

	memset(&cfg, 0, sizeof(cfg));
	memset(&sc, 0, sizeof(sc));
	sc.line = 7;
	assert_string_equal(check(&cfg, &sc, "none", &err), "");
	assert_string_equal(check(&cfg, &sc, "etrn", &err),
			    "f.conf:7: [session]: retrieve = etrn needs etrn_domains (the domains "
			    "to ask for)\n");
	assert_non_null(strstr(check(&cfg, &sc, "command", &err), "needs retrieve_command"));
	assert_non_null(strstr(check(&cfg, &sc, "atrn", &err), "needs atrn_domains"));
	assert_non_null(strstr(check(&cfg, &sc, "turn", &err), "needs turn_enabled = yes"));
	cfg.turn_enabled = 1;
	assert_string_equal(check(&cfg, &sc, "turn", &err), "");
	assert_int_equal(retrieve_check(&cfg, NULL, "f.conf", &err), 0);
	buf_free(&err);
}

/* --- the dialogue on a line ------------------------------------------------ */

struct line {
	struct session_config sc; /* atrn_tls */
	struct event_base *base;
	struct bufferevent *bev; /* no socket: the output stays */
	struct evbuffer *in;
	struct retrieve_client *c;
	struct buf steps;
	int ended, ok;
	char *text;
	const char *command; /* what ready sends; NULL: ATRN */
	int quit_on_reply;   /* the reply hook: QUIT and wait (TURN), else ATRN's */
};

static void line_step(void *arg, const char *what, int code, const char *text)
{
	struct line *l = arg;

	buf_printf(&l->steps, "%s %d;", what, code);
}

static void line_ready(struct retrieve_client *c, void *arg)
{
	struct line *l = arg;
	struct session_config sc;

	if (l->command)
		return retrieve_client_command(c, "%s", l->command);
	memset(&sc, 0, sizeof(sc));
	strlist_split(&sc.atrn_domains, "a.example, b.example");
	atrn_command(c, &sc);
	strlist_free(&sc.atrn_domains);
}

static void line_reply(struct retrieve_client *c, int code, const char *text, void *arg)
{
	struct line *l = arg;

	if (l->quit_on_reply)
		return retrieve_client_quit(c, 0, "refused: %d", code);
	if (atrn_answer(c, code, text) < 0)
		retrieve_client_end(c, 0, "ATRN refused: %d %s", code, text);
}

static void line_end(int ok, const char *text, void *arg)
{
	struct line *l = arg;

	l->ended++;
	l->ok = ok;
	free(l->text);
	l->text = strdup(text);
}

static const struct retrieve_client_ops line_ops = {
    .ready = line_ready, .reply = line_reply, .step = line_step, .end = line_end};

static struct config line_cfg = {.hostname = "me.example"};
static struct auth_cred line_cred = {.name = "hub", .user = "alice", .password = "pw"};

static void expect(struct line *l, const char *hub, const char *sent);

/* A dialogue on a line, past the greeting (EHLO sent). */
static void line_greeted(struct line *l, enum retrieve_client_mode mode, int tls)
{
	struct retrieve_client_opts o = {.mode = mode,
					 .cfg = &line_cfg,
					 .sc = &l->sc,
					 .peer = "the hub",
					 .cred = mode == RC_SMTP ? NULL : &line_cred,
					 .malformed = "malformed"};

	memset(l, 0, sizeof(*l));
	l->sc.atrn_tls = tls;
	l->base = event_base_new();
	l->bev = bufferevent_socket_new(l->base, -1, 0);
	evbuffer_unfreeze(bufferevent_get_output(l->bev), 1); /* the test takes what was sent */
	l->in = evbuffer_new();
	l->c = retrieve_client_attach(l->base, l->bev, &o, &line_ops, l);
	expect(l, "220 hub\r\n", "EHLO me.example\r\n");
}

static void line_close(struct line *l)
{
	retrieve_client_free(l->c);
	bufferevent_free(l->bev);
	evbuffer_free(l->in);
	event_base_free(l->base);
	buf_free(&l->steps);
	free(l->text);
}

/* Feeds the hub's lines; returns what the client sent since (caller frees). */
static char *line_say(struct line *l, const char *hub)
{
	struct evbuffer *out = bufferevent_get_output(l->bev);
	size_t n;
	char *sent;

	evbuffer_add(l->in, hub, strlen(hub));
	retrieve_client_read(l->c, l->in);
	n = evbuffer_get_length(out);
	sent = calloc(1, n + 1);
	evbuffer_remove(out, sent, n);
	return sent;
}

static void expect(struct line *l, const char *hub, const char *sent)
{
	char *got = line_say(l, hub);

	assert_string_equal(got, sent);
	free(got);
}

static void test_atrn_dialogue_refused_sends_quit(void **state)
{
	struct line l;
	char *ans;

	line_greeted(&l, RC_ODMR, ODMR_TLS_NONE);
	expect(&l, "250-hub\r\n250-STARTTLS\r\n250-AUTH CRAM-MD5 PLAIN\r\n250 ATRN\r\n",
	       "AUTH CRAM-MD5\r\n");
	/* RFC 2195's example challenge; the answer is "alice " and 32 hex digits */
	ans = line_say(&l, "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n");
	assert_int_equal(strlen(ans), 4 * ((6 + 32 + 2) / 3) + 2);
	free(ans);
	expect(&l, "235 ok\r\n", "ATRN a.example,b.example\r\n");
	expect(&l, "450 4.7.1 ATRN request refused\r\n", "QUIT\r\n");
	assert_int_equal(l.ended, 1);
	assert_false(l.ok);
	assert_string_equal(l.text, "ATRN refused: 450 4.7.1 ATRN request refused");
	assert_string_equal(buf_cstr(&l.steps), "authenticated 235;ATRN reply 450;");
	expect(&l, "221 bye\r\n", ""); /* over: nothing more is read */
	line_close(&l);
}

static void test_required_tls_sends_nothing_but_quit(void **state)
{
	struct line l;

	line_greeted(&l, RC_ODMR, ODMR_TLS_REQUIRED);
	expect(&l, "250-hub\r\n250 AUTH PLAIN\r\n", "QUIT\r\n");
	assert_int_equal(l.ended, 1);
	assert_string_equal(l.text, "atrn_tls = required, but the hub does not offer STARTTLS; "
				    "nothing sent (no AUTH)");
	assert_string_equal(buf_cstr(&l.steps), "no TLS 0;");
	line_close(&l);
}

static void test_plain_in_clear_only_on_the_line(void **state)
{
	struct line l;

	line_greeted(&l, RC_ODMR, ODMR_TLS_NONE);
	expect(&l, "250-hub\r\n250 AUTH PLAIN\r\n", "QUIT\r\n");
	assert_string_equal(l.text, "no usable AUTH at the hub (no CRAM-MD5 and no TLS)");
	line_close(&l);
	line_greeted(&l, RC_LINE, ODMR_TLS_NONE);
	expect(&l, "250-hub\r\n250 AUTH PLAIN\r\n", "AUTH PLAIN AGFsaWNlAHB3\r\n");
	expect(&l, "535 no\r\n", ""); /* the line ends without QUIT */
	assert_string_equal(l.text, "AUTH as alice refused: 535 no");
	assert_string_equal(buf_cstr(&l.steps), "greeting 220;authentication refused 535;");
	line_close(&l);
}

static void test_smtp_helo_fallback_and_quit(void **state)
{
	struct line l;

	line_greeted(&l, RC_SMTP, 0);
	l.command = "TURN";
	l.quit_on_reply = 1;
	expect(&l, "500 what\r\n", "HELO me.example\r\n");
	expect(&l, "250 hello\r\n", "TURN\r\n");
	expect(&l, "502-not\r\n502 implemented\r\n", "QUIT\r\n");
	assert_int_equal(l.ended, 0); /* waits for QUIT's reply */
	expect(&l, "221 bye\r\n", "");
	assert_int_equal(l.ended, 1);
	assert_string_equal(l.text, "refused: 502");
	line_close(&l);
}

static void test_malformed_reply_ends(void **state)
{
	struct line l;

	line_greeted(&l, RC_LINE, 0);
	expect(&l, "+++ATH0\r\n", "");
	assert_int_equal(l.ended, 1);
	assert_string_equal(l.text, "malformed");
	line_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_finds_every_method),
	    cmocka_unit_test(test_keys_reach_their_method),
	    cmocka_unit_test(test_names_come_from_the_tables),
	    cmocka_unit_test(test_check_names_what_the_method_lacks),
	    cmocka_unit_test(test_atrn_dialogue_refused_sends_quit),
	    cmocka_unit_test(test_required_tls_sends_nothing_but_quit),
	    cmocka_unit_test(test_plain_in_clear_only_on_the_line),
	    cmocka_unit_test(test_smtp_helo_fallback_and_quit),
	    cmocka_unit_test(test_malformed_reply_ends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
