/* Unit tests for deliver/held.c and dialup/odmr_client.c: the atrn_tls, atrn_fingerprint and
 * host[:port] forms the branch's settings take, when the hub's chain must
 * verify, and the client TLS session built from them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dialup/odmr_client.h"
#include "smtp/tls.h"

#define HEX64 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static void test_tls_policy_names(void **state)
{
	assert_int_equal(odmr_client_tls_policy("none"), ODMR_TLS_NONE);
	assert_int_equal(odmr_client_tls_policy("Required"), ODMR_TLS_REQUIRED);
	assert_int_equal(odmr_client_tls_policy("opportunistic"), ODMR_TLS_OPPORTUNISTIC);
	assert_int_equal(odmr_client_tls_policy("yes"), -1);
	assert_int_equal(odmr_client_tls_policy(""), -1);
	assert_int_equal(ODMR_TLS_OPPORTUNISTIC, 0); /* a zeroed [session] means the default */
	assert_string_equal(odmr_client_tls_name(ODMR_TLS_REQUIRED), "required");
}

static void test_fingerprint_forms(void **state)
{
	const char *good[] = {
	    "sha256:" HEX64,
	    HEX64,
	    "SHA256:9F:86:D0:81:88:4C:7D:65:9A:2F:EA:A0:C5:5A:D0:15:A3:BF:4F:1B:2B:0B:82:2C:D1:5D:"
	    "6C:15:B0:F0:0A:08",
	};
	const char *bad[] = {"",	   "sha256:",		"sha256:" HEX64 "00", "sha256:abcd",
			     "md5:" HEX64, "sha256:" HEX64 " ", "sha256:zz" HEX64};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *fp = fingerprint_parse(good[i]);
		assert_non_null(fp);
		assert_string_equal(fp, HEX64);
		free(fp);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_null(fingerprint_parse(bad[i]));
}

static void test_host_forms(void **state)
{
	int port = 366;
	char *h;

	h = odmr_client_host("hub.example", &port);
	assert_string_equal(h, "hub.example");
	assert_int_equal(port, 366);
	free(h);
	h = odmr_client_host("hub.example:2366", &port);
	assert_string_equal(h, "hub.example");
	assert_int_equal(port, 2366);
	free(h);
	h = odmr_client_host("[::1]:999", &port);
	assert_string_equal(h, "::1");
	assert_int_equal(port, 999);
	free(h);
	port = 366;
	h = odmr_client_host("[2001:db8::1]", &port);
	assert_string_equal(h, "2001:db8::1");
	assert_int_equal(port, 366);
	free(h);
}

/* The chain is checked with atrn_ca, or with required and no pin; a pin
 * alone replaces it; opportunistic alone checks nothing (today's default). */
static void test_when_the_chain_verifies(void **state)
{
	struct session_config sc;
	char ca[] = "ca.pem", pin[] = HEX64;

	memset(&sc, 0, sizeof(sc));
	assert_false(odmr_client_tls_verifies(&sc));
	sc.atrn_tls = ODMR_TLS_REQUIRED;
	assert_true(odmr_client_tls_verifies(&sc));
	sc.atrn_fingerprint = pin;
	assert_false(odmr_client_tls_verifies(&sc));
	sc.atrn_ca = ca;
	assert_true(odmr_client_tls_verifies(&sc));
	sc.atrn_tls = ODMR_TLS_OPPORTUNISTIC;
	sc.atrn_fingerprint = NULL;
	assert_true(odmr_client_tls_verifies(&sc));
}

/* A CA file that cannot be read: no session, the file named in why. */
static void test_tls_ssl_bad_ca(void **state)
{
	struct session_config sc;
	struct buf why = BUF_INIT;
	char ca[] = "/nonexistent/ca.pem";
	SSL *ssl;

	memset(&sc, 0, sizeof(sc));
	sc.atrn_ca = ca;
	assert_null(odmr_client_tls_ssl(&sc, "hub.example", &why));
	assert_non_null(strstr(buf_cstr(&why), "atrn_ca /nonexistent/ca.pem"));
	buf_free(&why);
	sc.atrn_ca = NULL;
	ssl = odmr_client_tls_ssl(&sc, "hub.example", &why);
	assert_non_null(ssl);
	assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "hub.example");
	SSL_free(ssl);
	ssl = odmr_client_tls_ssl(&sc, "127.0.0.1", &why); /* no SNI for an address */
	assert_non_null(ssl);
	assert_null(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
	SSL_free(ssl);
	buf_free(&why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tls_policy_names), cmocka_unit_test(test_fingerprint_forms),
	    cmocka_unit_test(test_host_forms),	     cmocka_unit_test(test_when_the_chain_verifies),
	    cmocka_unit_test(test_tls_ssl_bad_ca),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
