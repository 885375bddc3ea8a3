/* Unit tests of the link layer's cause model: every modem result string and
 * every pppd exit status maps to the right cause, class and words; no cause
 * text is a bare number. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "link/cause.h"

static void test_every_cause_has_name_class_and_words(void **state)
{
	for (int i = 0; i < CAUSE_COUNT; i++) {
		const char *name = cause_name((enum cause_id)i);
		const char *text = cause_text((enum cause_id)i);

		assert_non_null(name);
		assert_non_null(text);
		assert_true(strlen(name) > 1 && strlen(text) > 5);
		for (const char *c = text; *c; c++)
			if (isdigit((unsigned char)*c))
				fail_msg("text of %s has a number: %s", name, text);
		for (const char *c = name; *c; c++)
			assert_true(islower((unsigned char)*c) || *c == '-');
		for (int j = 0; j < i; j++)
			if (strcmp(name, cause_name((enum cause_id)j)) == 0)
				fail_msg("name %s used twice", name);
		if (i != CAUSE_OK)
			assert_int_not_equal(cause_class((enum cause_id)i), CC_NONE);
	}
	assert_string_equal(cause_name(CAUSE_COUNT), "unknown");
	assert_int_equal(cause_class((enum cause_id)999), CC_UNKNOWN);
	assert_non_null(strstr(cause_class_name(CC_UNKNOWN), "transient"));
}

static const struct {
	const char *line;
	int final;
	enum cause_id id;
	int connect;
	enum cause_class cls;
} results[] = {
    {"OK", 1, CAUSE_OK, 0, CC_NONE},
    {"CONNECT", 1, CAUSE_OK, 1, CC_NONE},
    {"CONNECT 33600", 1, CAUSE_OK, 1, CC_NONE},
    {"CONNECT 33600/ARQ/V34/LAPM/V42BIS", 1, CAUSE_OK, 1, CC_NONE},
    {"BUSY", 1, CAUSE_BUSY, 0, CC_TRANSIENT},
    {"busy", 1, CAUSE_BUSY, 0, CC_TRANSIENT},
    {"NO ANSWER", 1, CAUSE_NO_ANSWER, 0, CC_TRANSIENT},
    {"NO CARRIER", 1, CAUSE_NO_CARRIER, 0, CC_TRANSIENT},
    {"NO DIALTONE", 1, CAUSE_NO_DIALTONE, 0, CC_MODEM},
    {"NO DIAL TONE", 1, CAUSE_NO_DIALTONE, 0, CC_MODEM},
    {"ERROR", 1, CAUSE_DIAL_ERROR, 0, CC_MODEM},
    {"VOICE", 1, CAUSE_VOICE, 0, CC_TRANSIENT},
    {"DELAYED", 1, CAUSE_DELAYED, 0, CC_TRANSIENT},
    {"BLACKLISTED", 1, CAUSE_BLACKLISTED, 0, CC_CONFIG},
    /* ATV0 numeric result codes */
    {"0", 1, CAUSE_OK, 0, CC_NONE},
    {"1", 1, CAUSE_OK, 1, CC_NONE},
    {"3", 1, CAUSE_NO_CARRIER, 0, CC_TRANSIENT},
    {"4", 1, CAUSE_DIAL_ERROR, 0, CC_MODEM},
    {"6", 1, CAUSE_NO_DIALTONE, 0, CC_MODEM},
    {"7", 1, CAUSE_BUSY, 0, CC_TRANSIENT},
    {"8", 1, CAUSE_NO_ANSWER, 0, CC_TRANSIENT},
    {"10", 1, CAUSE_OK, 1, CC_NONE},
    /* not final: intermediate or unknown lines */
    {"2", 0, CAUSE_OK, 0, CC_NONE},
    {"RING", 0, CAUSE_OK, 0, CC_NONE},
    {"CARRIER 33600", 0, CAUSE_OK, 0, CC_NONE},
    {"PROTOCOL: LAPM", 0, CAUSE_OK, 0, CC_NONE},
    {"OKAY", 0, CAUSE_OK, 0, CC_NONE},
    {"BUSYNESS", 0, CAUSE_OK, 0, CC_NONE},
    {"", 0, CAUSE_OK, 0, CC_NONE},
};

static void test_modem_results(void **state)
{
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
		enum cause_id id = CAUSE_COUNT;
		int connect = -1;
		int final = cause_modem_result(results[i].line, &id, &connect);

		if (final != results[i].final)
			fail_msg("'%s': final %d, want %d", results[i].line, final,
				 results[i].final);
		if (!final)
			continue;
		if (id != results[i].id || connect != results[i].connect)
			fail_msg("'%s': %s connect %d", results[i].line, cause_name(id), connect);
		assert_int_equal(cause_class(id), results[i].cls);
	}
}

static const struct {
	int status;
	enum cause_id id;
	enum cause_class cls;
	const char *words; /* in the description */
} pppd[] = {
    {0, CAUSE_OK, CC_NONE, "success"},
    {1, CAUSE_PPP_FATAL, CC_UNKNOWN, "fatal error"},
    {2, CAUSE_PPP_OPTIONS, CC_CONFIG, "options"},
    {3, CAUSE_PPP_NOT_ROOT, CC_CONFIG, "not setuid-root"},
    {4, CAUSE_PPP_NO_KERNEL, CC_CONFIG, "kernel does not support PPP"},
    {5, CAUSE_PPP_SIGNAL, CC_TRANSIENT, "signal"},
    {6, CAUSE_PPP_LOCK, CC_MODEM, "lock the serial port"},
    {7, CAUSE_PPP_OPEN, CC_MODEM, "open the serial port"},
    {8, CAUSE_PPP_CONNECT, CC_TRANSIENT, "connect script failed"},
    {9, CAUSE_PPP_PTYCMD, CC_CONFIG, "pty command"},
    {10, CAUSE_PPP_NEGOTIATION, CC_TRANSIENT, "negotiation failed"},
    {11, CAUSE_PPP_PEER_AUTH, CC_CONFIG, "peer failed or refused to authenticate"},
    {12, CAUSE_PPP_IDLE, CC_TRANSIENT, "idle"},
    {13, CAUSE_PPP_CONNECT_TIME, CC_TRANSIENT, "connect time limit"},
    {14, CAUSE_PPP_CALLBACK, CC_TRANSIENT, "callback"},
    {15, CAUSE_PPP_PEER_DEAD, CC_TRANSIENT, "not responding"},
    {16, CAUSE_PPP_HANGUP, CC_TRANSIENT, "modem hung up"},
    {17, CAUSE_PPP_LOOPBACK, CC_MODEM, "loopback"},
    {18, CAUSE_PPP_INIT, CC_MODEM, "init script failed"},
    {19, CAUSE_PPP_AUTH, CC_CONFIG, "authentication failed"},
    {20, CAUSE_PPP_TRAFFIC, CC_TRANSIENT, "traffic limit"},
    {21, CAUSE_PPP_CNID, CC_CONFIG, "calling number is not authorized"},
    {42, CAUSE_PPP_EXIT_OTHER, CC_UNKNOWN, "does not document"},
};

static void test_pppd_exit_statuses(void **state)
{
	for (size_t i = 0; i < sizeof(pppd) / sizeof(pppd[0]); i++) {
		struct cause c;
		struct buf d = BUF_INIT;
		char want[32];

		cause_set(&c, cause_from_pppd(pppd[i].status), NULL);
		c.code = pppd[i].status;
		if (c.id != pppd[i].id)
			fail_msg("pppd %d: %s", pppd[i].status, cause_name(c.id));
		assert_int_equal(cause_class(c.id), pppd[i].cls);
		cause_describe(&c, &d);
		if (!strstr(buf_cstr(&d), pppd[i].words))
			fail_msg("pppd %d: '%s' lacks '%s'", pppd[i].status, buf_cstr(&d),
				 pppd[i].words);
		snprintf(want, sizeof(want), "pppd exit status %d: ", pppd[i].status);
		if (pppd[i].status && strncmp(buf_cstr(&d), want, strlen(want)) != 0)
			fail_msg("pppd %d: '%s'", pppd[i].status, buf_cstr(&d));
		buf_free(&d);
	}
}

static void test_describe(void **state)
{
	struct cause c;
	struct buf d = BUF_INIT;

	cause_set(&c, CAUSE_BUSY, "BUSY");
	cause_describe(&c, &d);
	assert_string_equal(buf_cstr(&d), "BUSY (the number is busy)");
	buf_reset(&d);
	cause_set(&c, CAUSE_DEVICE_BUSY, "/dev/ttyS0 locked by pid 42");
	cause_describe(&c, &d);
	assert_string_equal(buf_cstr(&d), "the modem device is in use by another program "
					  "(/dev/ttyS0 locked by pid 42)");
	buf_reset(&d);
	cause_set(&c, CAUSE_CMD_EXIT, "tunnel refused");
	c.code = 3;
	cause_describe(&c, &d);
	assert_string_equal(buf_cstr(&d),
			    "the link command failed (exit status 3): tunnel refused");
	buf_reset(&d);
	cause_set(&c, CAUSE_NO_RESPONSE, NULL);
	cause_describe(&c, &d);
	assert_string_equal(buf_cstr(&d), "the modem does not answer AT commands");
	/* Every cause, described without detail, starts with words. */
	for (int i = 1; i < CAUSE_COUNT; i++) {
		buf_reset(&d);
		cause_set(&c, (enum cause_id)i, NULL);
		c.code = 7;
		cause_describe(&c, &d);
		assert_true(isalpha((unsigned char)buf_cstr(&d)[0]));
	}
	buf_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_cause_has_name_class_and_words),
	    cmocka_unit_test(test_modem_results),
	    cmocka_unit_test(test_pppd_exit_statuses),
	    cmocka_unit_test(test_describe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
