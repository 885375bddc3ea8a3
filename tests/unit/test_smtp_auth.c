/* Unit tests of src/smtp/smtp_auth.c: the users file (both line forms,
 * permissions, errors), and the PLAIN, LOGIN and CRAM-MD5 exchanges with
 * right and wrong credentials and malformed answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <crypt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/buf.h"
#include "smtp/crypt_verify.h"
#include "smtp/smtp_auth.h"
#include "test_tmp.h"

static char path[TEST_TMP_MAX];

static void write_users(const char *text, mode_t mode)
{
	int fd = test_tmp_file(path, sizeof(path), "dialmail-smtpauth");
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void drop_users(void)
{
	unlink(path);
}

static struct smtp_auth_users *load_ok(const char *text)
{
	struct smtp_auth_users *u = NULL;
	struct buf err = BUF_INIT;

	write_users(text, 0600);
	assert_int_equal(smtp_auth_users_load(&u, path, &err), 0);
	assert_non_null(u);
	buf_free(&err);
	drop_users();
	return u;
}

static char *b64(const char *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
	return out;
}

static char *b64_decode(const char *s)
{
	unsigned char *out = calloc(1, strlen(s) + 1);

	EVP_DecodeBlock(out, (const unsigned char *)s, (int)strlen(s));
	return (char *)out;
}

/* One complete exchange: the answers in order; the last rc. */
static enum smtp_auth_rc run(struct smtp_auth_users *u, const char *mech, const char *initial,
			     const char *const *answers, char **user)
{
	struct smtp_auth_exchange *x = smtp_auth_start(mech, u, "mx.test");
	struct buf ch = BUF_INIT;
	enum smtp_auth_rc rc;

	assert_non_null(x);
	rc = smtp_auth_step(x, initial, &ch);
	for (size_t i = 0; rc == SMTP_AUTH_CONTINUE && answers && answers[i]; i++)
		rc = smtp_auth_step(x, answers[i], &ch);
	if (user)
		*user = smtp_auth_user(x) ? strdup(smtp_auth_user(x)) : NULL;
	smtp_auth_free(x);
	buf_free(&ch);
	return rc;
}

static void test_users_file_forms(void **state)
{
	struct smtp_auth_users *u = load_ok(
	    "# comment\n\nalice {PLAIN}s3cret pass\r\nbob:{PLAIN}pa ss:w\n  carol\t\t{PLAIN}x\n");
	char plain[64], *resp;
	int n;

	assert_int_equal(smtp_auth_users_count(u), 3);
	n = snprintf(plain, sizeof(plain), "%c%s%c%s", 0, "bob", 0, "pa ss:w");
	resp = b64(plain, (size_t)n);
	assert_int_equal(run(u, "plain", resp, NULL, NULL), SMTP_AUTH_OK);
	free(resp);
	n = snprintf(plain, sizeof(plain), "%c%s%c%s", 0, "alice", 0, "s3cret pass");
	resp = b64(plain, (size_t)n);
	assert_int_equal(run(u, "PLAIN", resp, NULL, NULL), SMTP_AUTH_OK);
	free(resp);
	n = snprintf(plain, sizeof(plain), "%c%s%c%s", 0, "carol", 0, "x");
	resp = b64(plain, (size_t)n);
	assert_int_equal(run(u, "PLAIN", resp, NULL, NULL), SMTP_AUTH_OK);
	free(resp);
	smtp_auth_users_free(u);
}

/* One PLAIN exchange for user and pass: its rc. */
static enum smtp_auth_rc plain_login(struct smtp_auth_users *u, const char *user, const char *pass)
{
	char plain[128], *resp;
	int n = snprintf(plain, sizeof(plain), "%c%s%c%s", 0, user, 0, pass);
	enum smtp_auth_rc rc;

	resp = b64(plain, (size_t)n);
	rc = run(u, "PLAIN", resp, NULL, NULL);
	free(resp);
	return rc;
}

/* crypt(3) hashes (yescrypt and SHA-512 made here by libxcrypt); a
 * password neither hashed nor marked {PLAIN} is refused. */
static void test_users_file_hashes(void **state)
{
	struct crypt_data cd;
	char *salt_y = crypt_gensalt_ra("$y$", 0, NULL, 0),
	     *salt_6 = crypt_gensalt_ra("$6$", 0, NULL, 0);
	char *text, *y;
	struct smtp_auth_users *u = NULL;
	struct buf err = BUF_INIT;

	memset(&cd, 0, sizeof(cd));
	y = strdup(crypt_rn("s3cret pass", salt_y, &cd, sizeof(cd)));
	assert_true(asprintf(&text, "alice %s\nbob:%s\n", y,
			     crypt_rn("b:ob", salt_6, &cd, sizeof(cd))) > 0);
	u = load_ok(text);
	assert_int_equal(plain_login(u, "alice", "s3cret pass"), SMTP_AUTH_OK);
	assert_int_equal(plain_login(u, "alice", "s3cret pas"), SMTP_AUTH_FAIL);
	assert_int_equal(plain_login(u, "bob", "b:ob"), SMTP_AUTH_OK);
	assert_int_equal(plain_login(u, "bob", "b:ob "), SMTP_AUTH_FAIL);
	smtp_auth_users_free(u);
	u = NULL;
	write_users("alice pw\n", 0600);
	assert_int_equal(smtp_auth_users_load(&u, path, &err), 1);
	assert_null(u);
	assert_non_null(strstr(buf_cstr(&err), "neither a crypt(3) hash"));
	drop_users();
	free(text);
	free(y);
	free(salt_y);
	free(salt_6);
	buf_free(&err);
}

static void cv_done(int ok, void *arg)
{
	*(int *)arg = ok + 1;
}

/* The threaded check answers in the loop; a cancelled one never does. */
static void test_crypt_verify_in_a_thread(void **state)
{
	struct event_base *base = event_base_new();
	char *salt = crypt_gensalt_ra("$6$", 0, NULL, 0);
	struct crypt_data cd;
	char *hash;
	int got = 0;

	memset(&cd, 0, sizeof(cd));
	hash = strdup(crypt_rn("pw", salt, &cd, sizeof(cd)));
	assert_non_null(crypt_verify_start(base, hash, "pw", cv_done, &got));
	assert_int_equal(got, 0); /* never from inside start */
	event_base_dispatch(base);
	assert_int_equal(got, 2);
	got = 0;
	assert_non_null(crypt_verify_start(base, hash, "px", cv_done, &got));
	event_base_dispatch(base);
	assert_int_equal(got, 1);
	got = 0;
	crypt_verify_cancel(crypt_verify_start(base, hash, "pw", cv_done, &got));
	event_base_dispatch(base);
	assert_int_equal(got, 0);
	event_base_free(base);
	free(hash);
	free(salt);
}

static void test_users_file_errors(void **state)
{
	static const char *const bad[] = {"alice\n", "alice:\n", ":pw\n", "a x\na y\n", "#only\n"};
	struct smtp_auth_users *u = NULL;
	struct buf err = BUF_INIT;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_users(bad[i], 0600);
		buf_reset(&err);
		assert_true(smtp_auth_users_load(&u, path, &err) > 0);
		assert_null(u);
		assert_non_null(strstr(buf_cstr(&err), path));
		drop_users();
	}
	write_users("alice {PLAIN}pw\n", 0640);
	buf_reset(&err);
	assert_true(smtp_auth_users_load(&u, path, &err) > 0);
	assert_non_null(strstr(buf_cstr(&err), "group or others"));
	drop_users();
	buf_reset(&err);
	assert_true(smtp_auth_users_load(&u, "/nonexistent/users", &err) > 0);
	assert_non_null(strstr(buf_cstr(&err), "cannot open"));
	buf_free(&err);
}

static void test_plain(void **state)
{
	struct smtp_auth_users *u = load_ok("alice {PLAIN}pw\nbob {PLAIN}other\n");
	char raw[64], *resp, *user = NULL;
	const char *answers[2] = {NULL, NULL};
	int n;

	n = snprintf(raw, sizeof(raw), "%c%s%c%s", 0, "alice", 0, "wrong");
	resp = b64(raw, (size_t)n);
	assert_int_equal(run(u, "PLAIN", resp, NULL, &user), SMTP_AUTH_FAIL);
	assert_string_equal(user, "alice");
	free(user);
	free(resp);
	/* acting as another user */
	n = snprintf(raw, sizeof(raw), "%s%c%s%c%s", "bob", 0, "alice", 0, "pw");
	resp = b64(raw, (size_t)n);
	assert_int_equal(run(u, "PLAIN", resp, NULL, NULL), SMTP_AUTH_FAIL);
	free(resp);
	/* authzid equal to the user is fine; answer after an empty challenge */
	n = snprintf(raw, sizeof(raw), "%s%c%s%c%s", "alice", 0, "alice", 0, "pw");
	resp = b64(raw, (size_t)n);
	answers[0] = resp;
	assert_int_equal(run(u, "PLAIN", NULL, answers, NULL), SMTP_AUTH_OK);
	free(resp);
	/* a prefix of the password is not the password */
	n = snprintf(raw, sizeof(raw), "%c%s%c%s", 0, "alice", 0, "p");
	resp = b64(raw, (size_t)n);
	assert_int_equal(run(u, "PLAIN", resp, NULL, NULL), SMTP_AUTH_FAIL);
	free(resp);
	assert_int_equal(run(u, "PLAIN", "AGFsaWNl", NULL, NULL), SMTP_AUTH_MALFORMED);
	assert_int_equal(run(u, "PLAIN", "not base64", NULL, NULL), SMTP_AUTH_MALFORMED);
	assert_int_equal(run(u, "PLAIN", "AGFsaWNlAHB3=", NULL, NULL), SMTP_AUTH_MALFORMED);
	assert_int_equal(run(u, "PLAIN", "=", NULL, NULL), SMTP_AUTH_MALFORMED);
	assert_int_equal(run(u, "PLAIN", "*", NULL, NULL), SMTP_AUTH_CANCELLED);
	smtp_auth_users_free(u);
}

static void test_login(void **state)
{
	struct smtp_auth_users *u = load_ok("alice {PLAIN}pw\n");
	struct smtp_auth_exchange *x = smtp_auth_start("LOGIN", u, "mx.test");
	struct buf ch = BUF_INIT;
	const char *ok[] = {"YWxpY2U=", "cHc=", NULL}, *bad[] = {"YWxpY2U=", "cHd4", NULL};
	char *text;

	assert_int_equal(smtp_auth_step(x, NULL, &ch), SMTP_AUTH_CONTINUE);
	text = b64_decode(buf_cstr(&ch));
	assert_string_equal(text, "Username:");
	free(text);
	assert_int_equal(smtp_auth_step(x, "YWxpY2U=", &ch), SMTP_AUTH_CONTINUE);
	text = b64_decode(buf_cstr(&ch));
	assert_string_equal(text, "Password:");
	free(text);
	assert_int_equal(smtp_auth_step(x, "*", &ch), SMTP_AUTH_CANCELLED);
	smtp_auth_free(x);
	buf_free(&ch);
	assert_int_equal(run(u, "LOGIN", NULL, ok, NULL), SMTP_AUTH_OK);
	assert_int_equal(run(u, "LOGIN", NULL, bad, NULL), SMTP_AUTH_FAIL);
	assert_int_equal(run(u, "LOGIN", "YWxpY2U=", ok + 1, NULL), SMTP_AUTH_OK);
	smtp_auth_users_free(u);
}

/* The client side of CRAM-MD5 from the base64 challenge. */
static char *cram_answer(const char *user, const char *pw, const char *challenge_b64)
{
	char *challenge = b64_decode(challenge_b64), hex[33], line[128], *out;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	HMAC(EVP_md5(), pw, (int)strlen(pw), (unsigned char *)challenge, strlen(challenge), md,
	     &len);
	for (unsigned int i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(line, sizeof(line), "%s %s", user, hex);
	out = b64(line, strlen(line));
	free(challenge);
	return out;
}

static void test_cram_md5(void **state)
{
	struct smtp_auth_users *u = load_ok("alice {PLAIN}pw\n");
	const char *users[] = {"alice", "alice", "nobody"}, *pws[] = {"pw", "px", "pw"};
	enum smtp_auth_rc want[] = {SMTP_AUTH_OK, SMTP_AUTH_FAIL, SMTP_AUTH_FAIL};
	char *first = NULL;

	for (int i = 0; i < 3; i++) {
		struct smtp_auth_exchange *x = smtp_auth_start("cram-md5", u, "mx.test");
		struct buf ch = BUF_INIT;
		char *answer, *challenge;

		assert_int_equal(smtp_auth_step(x, NULL, &ch), SMTP_AUTH_CONTINUE);
		challenge = b64_decode(buf_cstr(&ch));
		assert_true(challenge[0] == '<' && strstr(challenge, "@mx.test>") != NULL);
		if (first) /* a new challenge every time */
			assert_string_not_equal(first, challenge);
		else
			first = strdup(challenge);
		free(challenge);
		answer = cram_answer(users[i], pws[i], buf_cstr(&ch));
		assert_int_equal(smtp_auth_step(x, answer, &ch), want[i]);
		assert_string_equal(smtp_auth_user(x), users[i]);
		free(answer);
		smtp_auth_free(x);
		buf_free(&ch);
	}
	free(first);
	/* no initial response in CRAM-MD5; a malformed answer */
	assert_int_equal(run(u, "CRAM-MD5", "YWxpY2U=", NULL, NULL), SMTP_AUTH_MALFORMED);
	{
		const char *answers[] = {"YWxpY2UgMTIz", NULL}; /* "alice 123" */
		assert_int_equal(run(u, "CRAM-MD5", NULL, answers, NULL), SMTP_AUTH_MALFORMED);
	}
	assert_null(smtp_auth_start("DIGEST-MD5", u, "mx.test"));
	smtp_auth_users_free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_users_file_forms),
	    cmocka_unit_test(test_users_file_hashes),
	    cmocka_unit_test(test_crypt_verify_in_a_thread),
	    cmocka_unit_test(test_users_file_errors),
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_login),
	    cmocka_unit_test(test_cram_md5),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
