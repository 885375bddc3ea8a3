/* Unit tests of src/mail/routes.c through config_load: [routes] syntax,
 * most-specific lookup, option parsing, errors with file:line, auth_file
 * permissions and names, show-config of the table, transfer_mode. */
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

#include "mail/config.h"
#include "mail/routes.h"
#include "lib/buf.h"
#include "test_tmp.h"
#include "daemon/modules.h"

static char dir[TEST_TMP_MAX];

static int setup(void **state)
{
	return test_tmp_dir(dir, sizeof(dir), "dialmail-routes") ? 0 : -1;
}

static int teardown(void **state)
{
	return test_tmp_rm(dir) == 0 ? 0 : -1;
}

/* Writes dir/name with mode; returns the path (caller frees). */
static char *put(const char *name, const char *text, mode_t mode)
{
	char *path;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void load_ok(const char *text, struct config *cfg)
{
	struct buf err = BUF_INIT;
	char *path = put("ok.conf", text, 0644);

	if (config_load(cfg, path, &err) != 0)
		fail_msg("config refused: %s", buf_cstr(&err));
	buf_free(&err);
	free(path);
}

/* The file is refused and err has "PATH:line: " followed by needle. */
static void load_fails(const char *text, int line, const char *needle)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *path = put("bad.conf", text, 0644), *want;

	assert_int_equal(config_load(&cfg, path, &err), -1);
	assert_true(asprintf(&want, "%s:%d: ", path, line) > 0);
	if (strstr(buf_cstr(&err), want) == NULL || strstr(buf_cstr(&err), needle) == NULL)
		fail_msg("wanted '%s...%s' in: %s", want, needle, buf_cstr(&err));
	free(want);
	free(path);
	buf_free(&err);
}

static const char example[] = "local_domains = branch.example\n"
			      "[routes]\n"
			      "* = smarthost mail.isp.example:587 tls=required via=isp\n"
			      "partner.example = mx\n"
			      ".partner.example = mx port=2525\n"
			      ".deep.partner.example = hold\n"
			      "branch.example = local\n"
			      "Held.Example = hold\n";

static void test_lookup_most_specific(void **state)
{
	struct config cfg;
	const struct route *r;

	load_ok(example, &cfg);
	assert_int_equal(cfg.routes->n, 6);
	r = routes_lookup(cfg.routes, "partner.example");
	assert_int_equal(r->type, ROUTE_MX);
	assert_int_equal(r->port, 25);
	r = routes_lookup(cfg.routes, "a.partner.example");
	assert_string_equal(r->domain, ".partner.example");
	assert_int_equal(r->port, 2525);
	/* the nearest parent entry wins over a farther one */
	r = routes_lookup(cfg.routes, "x.deep.partner.example");
	assert_int_equal(r->type, ROUTE_HOLD);
	/* ".deep.partner.example" is for subdomains only */
	r = routes_lookup(cfg.routes, "deep.partner.example");
	assert_string_equal(r->domain, ".partner.example");
	assert_int_equal(routes_lookup(cfg.routes, "HELD.example")->type, ROUTE_HOLD);
	assert_int_equal(routes_lookup(cfg.routes, "branch.example")->type, ROUTE_LOCAL);
	r = routes_lookup(cfg.routes, "gmail.example");
	assert_string_equal(r->domain, "*");
	assert_int_equal(r->type, ROUTE_SMARTHOST);
	/* "partner.example" must not match "xpartner.example" */
	assert_string_equal(routes_lookup(cfg.routes, "xpartner.example")->domain, "*");
	config_free(&cfg);
}

static void test_no_default_route(void **state)
{
	struct config cfg;

	load_ok("[routes]\npartner.example = mx\n", &cfg);
	assert_null(routes_lookup(cfg.routes, "other.example"));
	assert_non_null(routes_lookup(cfg.routes, "partner.example"));
	config_free(&cfg);
	load_ok("", &cfg);
	assert_non_null(cfg.routes);
	assert_int_equal(cfg.routes->n, 0);
	assert_null(routes_lookup(cfg.routes, "other.example"));
	config_free(&cfg);
}

static void test_smarthost_options(void **state)
{
	struct config cfg;
	const struct route *r;

	load_ok("[routes]\n"
		"* = smarthost mail.isp.example:587 tls=required via=isp ca=/etc/ssl/ca.pem "
		"fingerprint=AB:cd:" /* colons and case are normalised */
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab\n"
		"a.example = smarthost [2001:db8::1]:2525 tls=none\n"
		"b.example = smarthost [192.0.2.1]\n"
		"c.example = smarthost relay.example port=26\n",
		&cfg);
	r = routes_lookup(cfg.routes, "x.example");
	assert_string_equal(r->host, "mail.isp.example");
	assert_int_equal(r->port, 587);
	assert_int_equal(r->tls, ROUTE_TLS_REQUIRED);
	assert_string_equal(r->via, "isp");
	assert_null(r->auth);
	assert_string_equal(r->ca, "/etc/ssl/ca.pem");
	assert_string_equal(r->fingerprint,
			    "abcd0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab");
	r = routes_lookup(cfg.routes, "a.example");
	assert_string_equal(r->host, "2001:db8::1");
	assert_int_equal(r->port, 2525);
	assert_int_equal(r->tls, ROUTE_TLS_NONE);
	r = routes_lookup(cfg.routes, "b.example");
	assert_string_equal(r->host, "192.0.2.1");
	assert_int_equal(r->port, 25);
	assert_int_equal(r->tls, ROUTE_TLS_OPPORTUNISTIC);
	assert_int_equal(routes_lookup(cfg.routes, "c.example")->port, 26);
	config_free(&cfg);
}

/* Hand-off to the site's mailbox server: lmtp on a socket or host, smtp. */
static void test_lmtp_smtp_routes(void **state)
{
	struct config cfg;
	const struct route *r;

	load_ok("local_domains = branch.example, a.example, b.example\n[routes]\n"
		"branch.example = lmtp unix:/run/dovecot/lmtp\n"
		"a.example = LMTP mailbox.branch.example\n"
		"b.example = lmtp [127.0.0.1]:2424 tls=none\n"
		"c.example = smtp exchange.branch.example:587 tls=required\n"
		"d.example = smtp [::1]\n",
		&cfg);
	r = routes_lookup(cfg.routes, "branch.example");
	assert_int_equal(r->type, ROUTE_LMTP);
	assert_string_equal(r->path, "/run/dovecot/lmtp");
	assert_null(r->host);
	assert_int_equal(r->port, 0);
	r = routes_lookup(cfg.routes, "a.example");
	assert_int_equal(r->type, ROUTE_LMTP);
	assert_null(r->path);
	assert_string_equal(r->host, "mailbox.branch.example");
	assert_int_equal(r->port, ROUTE_LMTP_PORT);
	assert_int_equal(r->tls, ROUTE_TLS_OPPORTUNISTIC);
	r = routes_lookup(cfg.routes, "b.example");
	assert_string_equal(r->host, "127.0.0.1");
	assert_int_equal(r->port, 2424);
	assert_int_equal(r->tls, ROUTE_TLS_NONE);
	r = routes_lookup(cfg.routes, "c.example");
	assert_int_equal(r->type, ROUTE_SMTP);
	assert_string_equal(r->host, "exchange.branch.example");
	assert_int_equal(r->port, 587);
	assert_int_equal(r->tls, ROUTE_TLS_REQUIRED);
	assert_null(r->path);
	r = routes_lookup(cfg.routes, "d.example");
	assert_string_equal(r->host, "::1");
	assert_int_equal(r->port, ROUTE_DEFAULT_PORT);
	assert_string_equal(routes_type_name(ROUTE_LMTP), "lmtp");
	assert_string_equal(routes_type_name(ROUTE_SMTP), "smtp");
	config_free(&cfg);
}

static void test_lmtp_smtp_errors(void **state)
{
	char long_path[300] = "[routes]\nx.example = lmtp unix:/";

	load_fails("[routes]\nx.example = lmtp\n", 2, "lmtp needs a target: lmtp unix:/path");
	load_fails("[routes]\nx.example = lmtp tls=none\n", 2, "lmtp needs a target");
	load_fails("[routes]\nx.example = lmtp unix:run/lmtp\n", 2,
		   "'unix:run/lmtp': expected unix:/absolute/path");
	load_fails("[routes]\nx.example = lmtp unix:\n", 2, "expected unix:/absolute/path");
	memset(long_path + strlen(long_path), 'x', 120);
	strcat(long_path, "\n");
	load_fails(long_path, 2, "(at most 107 characters)");
	load_fails("[routes]\nx.example = lmtp unix:/run/lmtp tls=none\n", 2,
		   "'tls=none': an lmtp unix: route takes no options");
	load_fails("[routes]\nx.example = lmtp mail.example:25\n", 2,
		   "lmtp on port 25: LMTP must not use SMTP's port");
	load_fails("[routes]\nx.example = lmtp mail.example port=25\n", 2, "lmtp on port 25");
	load_fails("[routes]\nx.example = lmtp bad_host!:24\n", 2, "is not host[:port]");
	load_fails("[routes]\nx.example = smtp\n", 2, "smtp needs a host: smtp host[:port]");
	load_fails("[routes]\nx.example = smtp unix:/run/smtp\n", 2, "is not host[:port]");
	load_fails("[routes]\nx.example = smtp mail.example colour=red\n", 2,
		   "unknown option 'colour'");
	load_fails("[routes]\nx.example = smarthost unix:/run/x\n", 2, "is not host[:port]");
}

static void test_route_errors(void **state)
{
	load_fails("[routes]\n* = bounce\n", 2, "route *: 'bounce' is not a route type");
	load_fails("[routes]\n* =\n", 2, "is not a route type");
	load_fails("[routes]\n* = mx tls=maybe\n", 2, "tls=maybe: expected none");
	load_fails("[routes]\n* = mx colour=blue\n", 2, "unknown option 'colour'");
	load_fails("[routes]\n* = mx fast\n", 2, "'fast': expected option=value");
	load_fails("[routes]\n* = smarthost\n", 2, "smarthost needs a host");
	load_fails("[routes]\n* = smarthost tls=none\n", 2, "smarthost needs a host");
	load_fails("[routes]\n* = smarthost mail.example:0\n", 2, "is not host[:port]");
	load_fails("[routes]\n* = smarthost mail.example:70000\n", 2, "is not host[:port]");
	load_fails("[routes]\n* = smarthost mail.example:25x\n", 2, "is not host[:port]");
	load_fails("[routes]\n* = smarthost bad_host!:25\n", 2, "is not host[:port]");
	load_fails("[routes]\n* = smarthost 2001:db8::1\n", 2, "goes in brackets");
	load_fails("[routes]\n* = smarthost [nonsense]:25\n", 2, "is not host[:port]");
	load_fails("[routes]\n* = smarthost a.example:25 port=26\n", 2, "port=26");
	load_fails("[routes]\nx.example = local tls=none\n", 2, "a local route takes no host");
	load_fails("[routes]\nx.example = hold mail.example\n", 2, "a hold route takes no");
	load_fails("[routes]\n* = mx fingerprint=abcd\n", 2, "expected 64 hex digits");
	load_fails("[routes]\n* = mx auth=a/b\n", 2, "auth=a/b: a name of letters");
	load_fails("[routes]\n* = mx via=isp via=isp2\n", 2, "via= given twice");
	load_fails("[routes]\nbad..example = mx\n", 2, "is not *, a domain or .domain");
	load_fails("[routes]\n*.example = mx\n", 2, "is not *, a domain or .domain");
	load_fails("[routes]\nA.example = mx\n\na.example = hold\n", 4,
		   "route a.example: given twice, first at line 2");
}

static void test_all_errors_reported(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *path = put("many.conf", "[routes]\n* = bogus\nx.example = mx tls=no\n", 0644);

	assert_int_equal(config_load(&cfg, path, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), ":2: route *:"));
	assert_non_null(strstr(buf_cstr(&err), ":3: route x.example:"));
	free(path);
	buf_free(&err);
}

static void test_auth_file(void **state)
{
	struct config cfg;
	const struct auth_cred *c;
	char *auth = put("auth",
			 "# name user password\n\nbranch  b-user   pass word with spaces \n"
			 "other o secret\n",
			 0600);
	char *text;

	/* relative to the configuration file's directory */
	load_ok("auth_file = auth\n[routes]\n* = smarthost mail.example:587 auth=branch\n", &cfg);
	c = routes_auth(cfg.routes, routes_lookup(cfg.routes, "x.example")->auth);
	assert_non_null(c);
	assert_string_equal(c->user, "b-user");
	assert_string_equal(c->password, "pass word with spaces");
	assert_string_equal(routes_auth(cfg.routes, "other")->password, "secret");
	assert_null(routes_auth(cfg.routes, "nobody"));
	config_free(&cfg);
	assert_true(asprintf(&text, "auth_file = %s\n[routes]\n* = mx auth=nobody\n", auth) > 0);
	load_fails(text, 3, "route *: auth=nobody: no such name in auth_file");
	free(text);
	load_fails("[routes]\n* = mx auth=branch\n", 2, "auth=branch: needs auth_file");
	free(auth);
}

static void test_auth_file_mode_refused(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *auth = put("auth-open", "branch u p\n", 0640);
	char *conf = put("open.conf", "auth_file = auth-open\n", 0644);

	assert_int_equal(config_load(&cfg, conf, &err), -1);
	if (!strstr(buf_cstr(&err), "auth-open: auth_file: group or others may access it "
				    "(mode 0640)"))
		fail_msg("unexpected: %s", buf_cstr(&err));
	assert_non_null(strstr(buf_cstr(&err), "chmod 600"));
	buf_reset(&err);
	free(auth);
	auth = put("auth-open", "branch u p\n", 0604);
	assert_int_equal(config_load(&cfg, conf, &err), -1);
	buf_reset(&err);
	free(conf);
	conf = put("missing.conf", "auth_file = no-such-file\n", 0644);
	assert_int_equal(config_load(&cfg, conf, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "no-such-file: auth_file: cannot open"));
	free(auth);
	free(conf);
	buf_free(&err);
}

static void test_auth_file_bad_line(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *auth = put("auth-bad", "ok u p\nlonely\nok u2 p2\n", 0600);
	char *conf = put("badauth.conf", "auth_file = auth-bad\n", 0644), *want;

	assert_int_equal(config_load(&cfg, conf, &err), -1);
	assert_true(asprintf(&want, "%s:2: expected 'NAME USER PASSWORD'", auth) > 0);
	assert_non_null(strstr(buf_cstr(&err), want));
	free(want);
	assert_true(asprintf(&want, "%s:3: credentials ok given twice", auth) > 0);
	assert_non_null(strstr(buf_cstr(&err), want));
	free(want);
	free(auth);
	free(conf);
	buf_free(&err);
}

/* show-config prints a [routes] block that loads back to the same table,
 * and never the password. */
static void test_show_round_trip(void **state)
{
	struct config cfg, again;
	char *text = NULL, *auth = put("auth-show", "branch u s3cr3t-pw\n", 0600);
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	load_ok("auth_file = auth-show\n[routes]\n"
		"* = smarthost [2001:db8::1]:587 tls=required auth=branch\n"
		".p.example = mx port=2525 via=isp\nh.example = hold\n"
		"l.example = lmtp unix:/run/dovecot/lmtp\nm.example = lmtp mbox.example\n"
		"s.example = smtp [192.0.2.7]:587 tls=none\n",
		&cfg);
	config_show(&cfg, f, 1);
	fclose(f);
	assert_non_null(
	    strstr(text, "\n[routes]\n* = smarthost [2001:db8::1]:587 tls=required "
			 "auth=branch\n.p.example = mx port=2525 tls=opportunistic "
			 "via=isp\nh.example = hold\nl.example = lmtp unix:/run/dovecot/lmtp\n"
			 "m.example = lmtp mbox.example:24 tls=opportunistic\n"
			 "s.example = smtp 192.0.2.7:587 tls=none\n"));
	assert_null(strstr(text, "s3cr3t"));
	load_ok(text, &again);
	assert_int_equal(again.routes->n, 6);
	assert_string_equal(routes_lookup(again.routes, "l.example")->path, "/run/dovecot/lmtp");
	assert_int_equal(routes_lookup(again.routes, "s.example")->type, ROUTE_SMTP);
	assert_int_equal(routes_lookup(again.routes, "a.p.example")->port, 2525);
	config_free(&again);
	config_free(&cfg);
	free(text);
	free(auth);
}

static void test_transfer_mode(void **state)
{
	struct config cfg;

	load_ok("", &cfg);
	assert_int_equal(routes_transfer_mode(cfg.transfer_mode), TRANSFER_BOTH);
	config_free(&cfg);
	load_ok("transfer_mode = inbound-only\n", &cfg);
	assert_int_equal(routes_transfer_mode(cfg.transfer_mode), TRANSFER_INBOUND_ONLY);
	config_free(&cfg);
	load_ok("transfer_mode = none\n", &cfg);
	assert_int_equal(routes_transfer_mode(cfg.transfer_mode), TRANSFER_NONE);
	config_free(&cfg);
	assert_int_equal(routes_transfer_mode("outbound-only"), TRANSFER_OUTBOUND_ONLY);
	load_fails("transfer_mode = sometimes\n", 1,
		   "'sometimes' is not both, inbound-only, outbound-only or none");
}

static void test_outbound_settings(void **state)
{
	struct config cfg;

	load_ok("", &cfg);
	assert_int_equal(cfg.max_messages_per_connection, 100);
	assert_int_equal(cfg.max_outbound_connections, 4);
	assert_int_equal(cfg.max_connections_per_destination, 1);
	assert_string_equal(cfg.auth_file, "");
	config_free(&cfg);
	load_fails("max_connections_per_destination = 0\n", 1, "out of range");
}

int main(void)
{
	modules_register();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lookup_most_specific),
	    cmocka_unit_test(test_no_default_route),
	    cmocka_unit_test(test_smarthost_options),
	    cmocka_unit_test(test_lmtp_smtp_routes),
	    cmocka_unit_test(test_lmtp_smtp_errors),
	    cmocka_unit_test(test_route_errors),
	    cmocka_unit_test(test_all_errors_reported),
	    cmocka_unit_test(test_auth_file),
	    cmocka_unit_test(test_auth_file_mode_refused),
	    cmocka_unit_test(test_auth_file_bad_line),
	    cmocka_unit_test(test_show_round_trip),
	    cmocka_unit_test(test_transfer_mode),
	    cmocka_unit_test(test_outbound_settings),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
