/* Unit tests of the configuration: defaults, every value type and its bounds,
 * error messages (file:line: setting: problem), sections, aliases, the
 * check-config/show-config commands, and docs/configuration.md in step. */
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

#include "cli/cli.h"
#include "mail/config.h"
#include "mail/listen.h"
#include "mail/routes.h"
#include "lib/buf.h"
#include "test_tmp.h"
#include "daemon/modules.h"

/* Writes text to a new file under $TMPDIR; the caller unlinks and frees it. */
static char *write_conf(const char *text)
{
	char path[TEST_TMP_MAX];
	int fd = test_tmp_file(path, sizeof(path), "dialmail-config");

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return strdup(path);
}

/* Loads text as a config file; err gets the messages, *path the file name. */
static int load_text(const char *text, struct config *cfg, struct buf *err, char **path)
{
	char *p = write_conf(text);
	int rc = config_load(cfg, p, err);

	unlink(p);
	if (path)
		*path = p;
	else
		free(p);
	return rc;
}

/* Loads text that must be valid. */
static void load_ok(const char *text, struct config *cfg)
{
	struct buf err = BUF_INIT;

	if (load_text(text, cfg, &err, NULL) != 0)
		fail_msg("unexpected errors:\n%s", buf_cstr(&err));
	buf_free(&err);
}

/* Loads text that must fail with exactly one error "FILE:line: what: ...",
 * whose problem contains needle. */
static void load_fails(const char *text, int line, const char *what, const char *needle)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *path, *want;

	assert_int_equal(load_text(text, &cfg, &err, &path), -1);
	want = NULL;
	assert_true(asprintf(&want, "%s:%d: %s: ", path, line, what) > 0);
	if (strncmp(buf_cstr(&err), want, strlen(want)) != 0 || !strstr(buf_cstr(&err), needle))
		fail_msg("expected '%s...%s', got '%s'", want, needle, buf_cstr(&err));
	assert_int_equal(strchr(err.data, '\n') - err.data + 1, (ptrdiff_t)err.len);
	/* A failed load leaves nothing behind. */
	assert_null(cfg.hostname);
	assert_null(cfg.listen.v);
	free(want);
	free(path);
	buf_free(&err);
}

/* A file next to the configuration files, with mode; caller unlinks, frees. */
static char *write_mode(const char *text, mode_t mode)
{
	char *p = write_conf(text);

	assert_int_equal(chmod(p, mode), 0);
	return p;
}

/* Secret files (auth_file, auth_users_file, tls_key_file) group or others
 * may access are refused, naming the configuration file and line, then the
 * file and its mode; allow_insecure_key_file turns that into a warning. */
static void test_secret_files_mode(void **state)
{
	static const char *const settings[] = {"auth_file", "auth_users_file", "tls_key_file"};
	char *creds = write_mode("isp user secret\n", 0644);
	char *users = write_mode("alice "
				 "$6$cNPdlnn6tsDEC/"
				 "kx$"
				 "I7Q2wY3Ro804nzO1D5MrLNqPbxywBQtven5LfHftXBwDsdimQzG3lF5d6feRlmNmv"
				 "P1jRUE3K4n3EBdgRCo3a/\n",
				 0640);
	char *key = write_mode("not a key\n", 0604);
	const char *files[] = {creds, users, key};
	struct config cfg;
	struct buf err = BUF_INIT;
	char *text, *path, *want;

	for (size_t i = 0; i < 3; i++) {
		const char *tls = i == 2 ? "tls_cert_file = /dev/null\n" : "";
		assert_true(asprintf(&text,
				     "hostname = a.example\nauth_allow_plaintext = yes\n%s = "
				     "%s\n%s",
				     settings[i], files[i], tls) > 0);
		buf_reset(&err);
		assert_int_equal(load_text(text, &cfg, &err, &path), -1);
		assert_true(asprintf(&want,
				     "%s:3: %s: %s: group or others may access it (mode 0%o); it "
				     "holds %s: chmod 600 it, owned by the daemon's user, or set "
				     "allow_insecure_key_file = yes\n",
				     path, files[i], settings[i],
				     i == 0   ? 0644
				     : i == 1 ? 0640
					      : 0604,
				     i == 2 ? "a private key" : "passwords") > 0);
		if (strcmp(buf_cstr(&err), want) != 0)
			fail_msg("expected '%s', got '%s'", want, buf_cstr(&err));
		free(want);
		free(path);
		free(text);
	}
	/* allowed: a warning, and the files are used */
	assert_true(asprintf(&text,
			     "auth_allow_plaintext = yes\nauth_file = %s\n"
			     "auth_users_file = %s\nallow_insecure_key_file = yes\n",
			     creds, users) > 0);
	buf_reset(&err);
	if (load_text(text, &cfg, &err, &path) != 0)
		fail_msg("refused: %s", buf_cstr(&err));
	assert_true(
	    asprintf(&want,
		     "%s:2: %s: auth_file: group or others may access it (mode 0644); it "
		     "holds passwords: allowed by allow_insecure_key_file = yes, but chmod "
		     "600 it\n%s:3: %s: auth_users_file: group or others may access it (mode "
		     "0640); it holds passwords: allowed by allow_insecure_key_file = yes, but "
		     "chmod 600 it\n",
		     path, creds, path, users) > 0);
	assert_string_equal(buf_cstr(&cfg.warnings), want);
	assert_non_null(cfg.auth_users);
	assert_non_null(cfg.routes->auth);
	config_free(&cfg);
	free(want);
	free(path);
	free(text);
	/* owner only: accepted without a word */
	assert_int_equal(chmod(creds, 0600), 0);
	assert_true(asprintf(&text, "auth_file = %s\n", creds) > 0);
	load_ok(text, &cfg);
	assert_int_equal(cfg.warnings.len, 0);
	config_free(&cfg);
	free(text);
	for (size_t i = 0; i < 3; i++) {
		unlink(files[i]);
		free((char *)files[i]);
	}
	buf_free(&err);
}

/* Problems found after the file (a file a setting names) name the
 * configuration file and line first, then the file. */
static void test_file_errors_name_config_line(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *path, *want;

	assert_int_equal(load_text("# x\n\nauth_file = /nonexistent/nope\n", &cfg, &err, &path),
			 -1);
	assert_true(asprintf(&want, "%s:3: /nonexistent/nope: auth_file: cannot open: ", path) > 0);
	if (strncmp(buf_cstr(&err), want, strlen(want)) != 0)
		fail_msg("expected '%s...', got '%s'", want, buf_cstr(&err));
	free(want);
	free(path);
	buf_reset(&err);
	assert_int_equal(
	    load_text("tls_key_file = /nonexistent/key\ntls_cert_file = /nonexistent/c\n", &cfg,
		      &err, &path),
	    -1);
	assert_true(asprintf(&want, "%s:2: /nonexistent/c: tls_cert_file: cannot open: ", path) >
		    0);
	if (strncmp(buf_cstr(&err), want, strlen(want)) != 0)
		fail_msg("expected '%s...', got '%s'", want, buf_cstr(&err));
	free(want);
	free(path);
	buf_free(&err);
}

/* Control bytes of the file echoed in an error come out escaped. */
static void test_control_bytes_escaped(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *path;

	load_fails("hostname = a\x1b[2Jb\n", 1, "hostname",
		   "'a\\x1b[2Jb' is not a valid host name");
	load_fails("x\ry = 1\n", 1, "x\\ry", "unknown setting");
	assert_int_equal(load_text("auth_file = /nonexistent/a\x1b]0;b\n[routes]\nb\x07.example = "
				   "nonsense\n",
				   &cfg, &err, &path),
			 -1);
	for (size_t i = 0; i < err.len; i++)
		if (err.data[i] != '\n' &&
		    ((unsigned char)err.data[i] < 0x20 || err.data[i] == 0x7f))
			fail_msg("raw control byte 0x%02x in '%s'", err.data[i], buf_cstr(&err));
	assert_non_null(strstr(buf_cstr(&err), "/nonexistent/a\\x1b]0;b: auth_file: cannot open"));
	assert_non_null(strstr(buf_cstr(&err), "b\\x07.example"));
	free(path);
	buf_free(&err);
}

static char *show(const struct config *cfg, int only_changed)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	config_show(cfg, f, only_changed);
	fclose(f);
	return text;
}

/* Runs a subcommand with stdout and stderr captured into *out. */
static int run_cmd(int (*cmd)(int, char **), char **out, int argc, char **argv)
{
	char path[TEST_TMP_MAX];
	int fd = test_tmp_file(path, sizeof(path), "dialmail-out"), so = dup(1), se = dup(2), rc;
	FILE *f;
	long n;

	assert_true(fd >= 0);
	fflush(stdout);
	fflush(stderr);
	dup2(fd, 1);
	dup2(fd, 2);
	rc = cmd(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	close(fd);
	f = fopen(path, "r");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	*out = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(*out, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(path);
	return rc;
}

static void test_defaults_without_file(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char host[256] = "";

	assert_int_equal(config_load(&cfg, NULL, &err), 0);
	assert_int_equal(err.len, 0);
	assert_null(cfg.path);
	assert_int_equal(cfg.listen.n, 1);
	assert_string_equal(cfg.listen.v[0], "127.0.0.1:2525");
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(cfg.hostname, host);
	assert_true(config_is_local_domain(&cfg, "localhost"));
	assert_int_equal(cfg.local_recipients.n, 0);
	assert_int_equal(cfg.n_mynetworks, 2);
	assert_int_equal(cfg.mynetworks[0].prefix, 8);
	assert_int_equal(cfg.mynetworks[1].prefix, 128);
	assert_int_equal(cfg.max_message_size, 10 * 1024 * 1024);
	assert_int_equal(cfg.max_recipients, 100);
	assert_int_equal(cfg.max_connections, 100);
	assert_int_equal(cfg.smtp_timeout, 300);
	assert_int_equal(cfg.smtp_data_timeout, 600);
	assert_int_equal(cfg.smtp_min_data_rate, 0);
	assert_int_equal(cfg.smtp_max_session_time, 0);
	assert_int_equal(cfg.max_connections_per_client, 10);
	assert_int_equal(cfg.max_connection_rate_per_client, 0);
	assert_int_equal(cfg.max_messages_per_client, 0);
	assert_int_equal(cfg.client_limits_exempt_mynetworks, 1);
	assert_int_equal(cfg.min_free_space, 10 * 1024 * 1024);
	assert_int_equal(cfg.queue_run_interval, 60);
	assert_string_equal(cfg.postmaster, "postmaster");
	assert_int_equal(cfg.use_syslog, 1);
	for (int c = 0; c < EVC_COUNT; c++)
		assert_int_equal(cfg.diag[c], EVL_MEDIUM);
	assert_int_equal(cfg.n_aliases, 0);
	config_free(&cfg);
	assert_null(cfg.hostname);
	config_free(&cfg); /* twice is harmless */
	buf_free(&err);
}

static void test_every_type_parses(void **state)
{
	struct config cfg;

	load_ok("# a comment\n"
		"listen = 0.0.0.0:25, [::1]:2525\n"
		"hostname = Mail.Example.ORG\n"
		"local_domains = Example.ORG example.net\n"
		"local_recipients = Alice,bob\n"
		"mynetworks = 192.0.2.0/24, 2001:db8::/32, 10.1.2.3\n"
		"max_message_size = 512k   # trailing comment\n"
		"max_recipients = 7\n"
		"\tmax_connections=9\n"
		"smtp_timeout = 90\n"
		"smtp_data_timeout = 2h\n"
		"smtp_min_data_rate = 250\n"
		"smtp_max_session_time = 1h\n"
		"max_connections_per_client = 3\n"
		"max_connection_rate_per_client = 30\n"
		"max_messages_per_client = 60\n"
		"client_limits_exempt_mynetworks = no\n"
		"min_free_space = 0\n"
		"queue_run_interval = 1d\n"
		"postmaster = Admin@Example.org\n"
		"syslog = off\n"
		"diag_dialup = maximum\n"
		"diag_smtp = None\n"
		"diag_security = minimum\r\n",
		&cfg);
	assert_int_equal(cfg.listen.n, 2);
	assert_string_equal(cfg.listen.v[1], "[::1]:2525");
	assert_string_equal(cfg.hostname, "Mail.Example.ORG");
	assert_string_equal(cfg.local_domains.v[0], "example.org");
	assert_string_equal(cfg.local_recipients.v[0], "alice");
	assert_int_equal(cfg.n_mynetworks, 3);
	assert_int_equal(cfg.mynetworks[1].prefix, 32);
	assert_int_equal(cfg.mynetworks[2].prefix, 32);
	assert_int_equal(cfg.max_message_size, 512 * 1024);
	assert_int_equal(cfg.max_recipients, 7);
	assert_int_equal(cfg.max_connections, 9);
	assert_int_equal(cfg.smtp_timeout, 90);
	assert_int_equal(cfg.smtp_data_timeout, 7200);
	assert_int_equal(cfg.smtp_min_data_rate, 250);
	assert_int_equal(cfg.smtp_max_session_time, 3600);
	assert_int_equal(cfg.max_connections_per_client, 3);
	assert_int_equal(cfg.max_connection_rate_per_client, 30);
	assert_int_equal(cfg.max_messages_per_client, 60);
	assert_int_equal(cfg.client_limits_exempt_mynetworks, 0);
	assert_int_equal(cfg.min_free_space, 0);
	assert_int_equal(cfg.queue_run_interval, 86400);
	assert_string_equal(cfg.postmaster, "Admin@Example.org");
	assert_int_equal(cfg.use_syslog, 0);
	assert_int_equal(cfg.diag[EVC_DIALUP], EVL_MAX);
	assert_int_equal(cfg.diag[EVC_SMTP], EVL_NONE);
	assert_int_equal(cfg.diag[EVC_SECURITY], EVL_MIN);
	assert_int_equal(cfg.diag[EVC_QUEUE], EVL_MEDIUM);
	assert_non_null(cfg.path);
	config_free(&cfg);
}

static void test_size_and_duration_suffixes(void **state)
{
	static const struct {
		const char *text;
		uint64_t size;
	} sizes[] = {
	    {"1K", 1024}, {"2048", 2048}, {"3m", 3 << 20}, {"2G", 2ULL << 30}, {"4G", 4ULL << 30}};
	static const struct {
		const char *text;
		int secs;
	} times[] = {{"1", 1}, {"45s", 45}, {"2m", 120}, {"3H", 10800}, {"1d", 86400}};
	struct config cfg;
	char line[128];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(line, sizeof(line), "max_message_size = %s\n", sizes[i].text);
		load_ok(line, &cfg);
		assert_int_equal(cfg.max_message_size, sizes[i].size);
		config_free(&cfg);
	}
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		snprintf(line, sizeof(line), "smtp_timeout = %s\n", times[i].text);
		load_ok(line, &cfg);
		assert_int_equal(cfg.smtp_timeout, times[i].secs);
		config_free(&cfg);
	}
	load_fails("max_message_size = 10MB\n", 1, "max_message_size", "is not a size");
	load_fails("max_message_size = 10X\n", 1, "max_message_size", "is not a size");
	load_fails("max_message_size = -1\n", 1, "max_message_size", "is not a size");
	load_fails("max_message_size = 99999999999999999999G\n", 1, "max_message_size",
		   "is not a size");
	load_fails("smtp_timeout = 5 m\n", 1, "smtp_timeout", "is not a duration");
	load_fails("smtp_timeout = 1w\n", 1, "smtp_timeout", "is not a duration");
	load_fails("smtp_timeout =\n", 1, "smtp_timeout", "is not a duration");
}

static void test_bounds_enforced(void **state)
{
	struct config cfg;

	load_fails("max_recipients = 0\n", 1, "max_recipients", "0 is out of range (1 to 100000)");
	load_fails("max_recipients = 100001\n", 1, "max_recipients", "out of range");
	load_fails("max_recipients = 1e3\n", 1, "max_recipients", "is not a whole number");
	load_fails("max_connections = 99999999999999999999\n", 1, "max_connections",
		   "not a whole number");
	load_fails("max_message_size = 1023\n", 1, "max_message_size", "(1K to 4G)");
	load_fails("max_message_size = 5G\n", 1, "max_message_size", "5G is out of range");
	load_fails("queue_run_interval = 0\n", 1, "queue_run_interval", "(1s to 1d)");
	load_fails("smtp_data_timeout = 25h\n", 1, "smtp_data_timeout", "out of range");
	load_fails("syslog = maybe\n", 1, "syslog", "is not yes or no");
	load_fails("diag_queue = loud\n", 1, "diag_queue", "is not none, minimum");
	load_ok("max_recipients = 1\nmax_connections = 10000\n", &cfg);
	assert_int_equal(cfg.max_recipients, 1);
	assert_int_equal(cfg.max_connections, 10000);
	config_free(&cfg);
}

static void test_bool_spellings(void **state)
{
	static const char *const yes[] = {"yes", "TRUE", "on", "1"};
	static const char *const no[] = {"no", "false", "Off", "0"};
	struct config cfg;
	char line[64];

	for (int i = 0; i < 4; i++) {
		snprintf(line, sizeof(line), "syslog = %s\n", yes[i]);
		load_ok(line, &cfg);
		assert_int_equal(cfg.use_syslog, 1);
		config_free(&cfg);
		snprintf(line, sizeof(line), "syslog = %s\n", no[i]);
		load_ok(line, &cfg);
		assert_int_equal(cfg.use_syslog, 0);
		config_free(&cfg);
	}
}

static void test_all_errors_collected_with_file_and_line(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *path, *want;

	assert_int_equal(load_text("max_recipients = 10\n"
				   "\n"
				   "max_recipients = 20\n"
				   "no_such_thing = 1\n"
				   "just words\n"
				   "smtp_timeout = soon\n"
				   "[phonebooks isp]\n"
				   "device = /dev/ttyS0\n"
				   "[aliases]\n"
				   "sales = alice\n",
				   &cfg, &err, &path),
			 -1);
	assert_true(asprintf(&want,
			     "%1$s:3: max_recipients: set twice, first at line 1\n"
			     "%1$s:4: no_such_thing: unknown setting\n"
			     "%1$s:5: just words: expected 'name = value'\n"
			     "%1$s:6: smtp_timeout: 'soon' is not a duration (a number with s, m, "
			     "h or d)\n"
			     "%1$s:7: [phonebooks isp]: unknown section\n",
			     path) > 0);
	assert_string_equal(buf_cstr(&err), want);
	assert_int_equal(cfg.n_aliases, 0);
	free(want);
	free(path);
	buf_free(&err);
}

static void test_sections(void **state)
{
	struct config cfg;

	load_fails("max_recipient = 5\n", 1, "max_recipient",
		   "unknown setting (did you mean max_recipients?)");
	load_fails("Hostname = a\n", 1, "Hostname", "unknown setting (did you mean hostname?)");
	load_fails("[route]\n* = smarthost\n", 1, "[route]", "unknown section");
	load_fails("[aliases extra]\n", 1, "[aliases extra]", "section takes no name");
	load_fails("[aliases\nx = y\n", 1, "[aliases", "without closing ']'");
	load_fails("[aliases]\nsales = alice\nmax_recipients = 5\n", 3, "alias max_recipients",
		   "settings go before the first [section]");
	load_ok("[ aliases ]\n[aliases]\nsales = alice\n", &cfg);
	assert_int_equal(cfg.n_aliases, 1);
	config_free(&cfg);
}

static void test_missing_file(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;

	assert_int_equal(config_load(&cfg, "/nonexistent/dialmail.conf", &err), -1);
	assert_string_equal(buf_cstr(&err),
			    "/nonexistent/dialmail.conf: cannot open: No such file or directory\n");
	buf_free(&err);
}

static void test_cidr_errors(void **state)
{
	load_fails("mynetworks = 10.0.0.0/33\n", 1, "mynetworks", "bad network '10.0.0.0/33'");
	load_fails("mynetworks = ::1/129\n", 1, "mynetworks", "bad network '::1/129'");
	load_fails("mynetworks = 192.0.2.0/24, 10.0.0/8, 10.0.0.0/\n", 1, "mynetworks",
		   "bad network '10.0.0/8', '10.0.0.0/'");
	load_fails("mynetworks = example.org\n", 1, "mynetworks", "expected address/prefix");
}

static void test_list_items_checked(void **state)
{
	struct config cfg;

	load_fails("listen = 127.0.0.1\n", 1, "listen", "is not host:port");
	load_fails("listen = ::1:25\n", 1, "listen", "brackets");
	load_fails("listen = 127.0.0.1:0\n", 1, "listen", "port must be 1 to 65535");
	load_fails("local_recipients = alice, ../etc, a/b\n", 1, "local_recipients",
		   "'../etc' is not a valid local part");
	load_fails("local_recipients = .hidden\n", 1, "local_recipients", "not a valid local part");
	load_fails("local_domains = example.org.\n", 1, "local_domains", "trailing dot");
	load_fails("hostname = mail example\n", 1, "hostname", "not a valid host name");
	load_fails("postmaster = a/b@example.org\n", 1, "postmaster", "not a valid local part");
	load_ok("listen =\nmynetworks =\n", &cfg);
	assert_int_equal(cfg.listen.n, 0);
	assert_int_equal(cfg.n_mynetworks, 0);
	assert_null(cfg.mynetworks);
	config_free(&cfg);
}

/* What a reload compares and keeps: the settings and sections that differ,
 * and a restart-only value exchanged back (each struct then frees what it
 * holds: no double free, no leak, under ASan). */
static void test_changes_and_keep(void **state)
{
	struct config a, b;
	struct strlist changed = {0};

	load_ok("listen = 127.0.0.1:2525\nlocal_recipients = alice\n"
		"mynetworks = 127.0.0.0/8\n[aliases]\nsales = alice\n",
		&a);
	load_ok("listen = 127.0.0.1:2626, [::1]:2626\nlocal_recipients = alice, bob\n"
		"mynetworks = 127.0.0.0/8, 192.0.2.0/24\n[aliases]\nsales = alice, bob\n"
		"[routes]\nexample.net = hold\n",
		&b);
	config_changes(&a, &a, &changed);
	assert_int_equal(changed.n, 0);
	config_changes(&a, &b, &changed);
	assert_true(strlist_has(&changed, "listen"));
	assert_true(strlist_has(&changed, "local_recipients"));
	assert_true(strlist_has(&changed, "mynetworks"));
	assert_true(strlist_has(&changed, "[aliases]"));
	assert_true(strlist_has(&changed, "[routes]"));
	assert_false(strlist_has(&changed, "hostname"));
	assert_int_equal(config_keep(&b, &a, "listen"), 0);
	assert_int_equal(config_keep(&b, &a, "mynetworks"), 0);
	assert_int_equal(b.listen.n, 1);
	assert_string_equal(b.listen.v[0], "127.0.0.1:2525");
	assert_int_equal(a.listen.n, 2);
	assert_int_equal(b.n_mynetworks, 1);
	assert_int_equal(a.n_mynetworks, 2);
	assert_int_equal(config_keep(&b, &a, "no_such_setting"), -1);
	strlist_free(&changed);
	config_free(&a);
	config_free(&b);
}

static void test_listen_options(void **state)
{
	struct config cfg, l;
	struct buf out = BUF_INIT;

	load_fails("listen = 127.0.0.1:25 -o hostname=x\n", 1, "listen",
		   "hostname cannot be set per listener");
	load_fails("listen = 127.0.0.1:25 -o smtp_timeout=0\n", 1, "listen",
		   "in -o smtp_timeout=0");
	load_fails("listen = 127.0.0.1:25 -o\n", 1, "listen", "-o without name=value");
	load_fails("listen = 127.0.0.1:25 lmtp\n", 1, "listen", "'lmtp': expected host:port");
	load_fails("listen = 127.0.0.1:25 smtp submission\n", 1, "listen", "one service");
	load_ok("listen = 127.0.0.1:25 [::1]:25, 127.0.0.1:2526 smtp -o smtp_min_data_rate=0 "
		"-o smtp_timeout=20m,127.0.0.1:2527 -o max_connections_per_client=0\n"
		"smtp_min_data_rate = 100\n",
		&cfg);
	assert_int_equal(cfg.listen.n, 4);
	assert_string_equal(cfg.listen.v[2], "127.0.0.1:2526");
	assert_int_equal(cfg.listen_spec[2].n_o, 2);
	listen_config(&cfg, 2, &l);
	assert_int_equal(l.smtp_timeout, 1200);
	assert_int_equal(l.smtp_min_data_rate, 0);
	assert_int_equal(l.max_connections_per_client, 10);
	assert_int_equal(cfg.smtp_timeout, 300);
	listen_config(&cfg, 3, &l);
	assert_int_equal(l.max_connections_per_client, 0);
	assert_int_equal(l.smtp_min_data_rate, 100);
	settings_format(config_setting("listen"), &cfg, &out);
	assert_string_equal(buf_cstr(&out),
			    "127.0.0.1:25, [::1]:25, 127.0.0.1:2526 -o smtp_min_data_rate=0 -o "
			    "smtp_timeout=20m, 127.0.0.1:2527 -o max_connections_per_client=0");
	buf_free(&out);
	config_free(&cfg);
}

static void test_aliases(void **state)
{
	struct config cfg;
	const struct alias *a;

	load_ok("local_recipients = alice bob\n"
		"[aliases]\n"
		"Sales = Alice, bob@Example.NET\n"
		"postmaster = alice\n"
		"info.desk = bob\n",
		&cfg);
	assert_int_equal(cfg.n_aliases, 3);
	a = config_alias(&cfg, "SALES");
	assert_non_null(a);
	assert_string_equal(a->name, "sales");
	assert_int_equal(a->targets.n, 2);
	assert_string_equal(a->targets.v[0], "alice");
	assert_string_equal(a->targets.v[1], "bob@Example.NET");
	assert_non_null(config_alias(&cfg, "postmaster"));
	assert_null(config_alias(&cfg, "alice"));
	config_free(&cfg);

	load_fails("[aliases]\n../x = alice\n", 2, "alias ../x", "not a valid local part");
	load_fails("[aliases]\na/b = alice\n", 2, "alias a/b", "not a valid local part");
	load_fails("[aliases]\n= alice\n", 2, "=", "no name before '='");
	load_fails("[aliases]\nsales =\n", 2, "alias sales", "no target");
	load_fails("[aliases]\nsales = ../x\n", 2, "alias sales", "target '../x'");
	load_fails("[aliases]\nsales = a\n\nSALES = b\n", 4, "alias SALES",
		   "set twice, first at line 2");
}

static void test_local_domain(void **state)
{
	struct config cfg;

	load_ok("local_domains = example.org, Example.NET\n", &cfg);
	assert_true(config_is_local_domain(&cfg, "EXAMPLE.org"));
	assert_true(config_is_local_domain(&cfg, "example.net"));
	assert_false(config_is_local_domain(&cfg, "example.org."));
	assert_false(config_is_local_domain(&cfg, "sub.example.org"));
	assert_false(config_is_local_domain(&cfg, "localhost"));
	assert_false(config_is_local_domain(&cfg, ""));
	config_free(&cfg);
}

static void test_show_config(void **state)
{
	struct config cfg, again;
	char *all, *changed, *path, *all2;

	load_ok("max_message_size = 20971520\n"
		"smtp_timeout = 120\n"
		"mynetworks = 10.0.0.0/8 ::1\n"
		"[aliases]\nsales = alice, bob\n",
		&cfg);
	all = show(&cfg, 0);
	assert_non_null(strstr(all, "\nmax_message_size = 20M\n"));
	assert_non_null(strstr(all, "\nsmtp_timeout = 2m\n"));
	assert_non_null(strstr(all, "\nmax_recipients = 100\n"));
	assert_non_null(strstr(all, "\nlocal_recipients =\n"));
	assert_non_null(strstr(all, "\nsyslog = yes\n"));
	assert_non_null(strstr(all, "\ndiag_dialup = medium\n"));
	assert_true(strncmp(all, "listen = 127.0.0.1:2525\n", 24) == 0);
	assert_non_null(strstr(all, "\n\n[aliases]\nsales = alice, bob\n"));
	changed = show(&cfg, 1);
	assert_string_equal(changed, "mynetworks = 10.0.0.0/8, ::1/128\n"
				     "max_message_size = 20M\n"
				     "smtp_timeout = 2m\n"
				     "\n[aliases]\nsales = alice, bob\n");
	/* The listing is itself a valid file with the same meaning. */
	path = write_conf(all);
	load_ok(all, &again);
	all2 = show(&again, 0);
	assert_string_equal(all, all2);
	unlink(path);
	free(path);
	free(all);
	free(all2);
	free(changed);
	config_free(&again);
	config_free(&cfg);
}

static void test_cli_check_config(void **state)
{
	char *path = write_conf("max_recipients = 5\n"),
	     *bad = write_conf("max_recipients = 0\nx = 1\n");
	char *out, *want;
	char *ok_argv[] = {"check-config", "--config", path, NULL};
	char *bad_argv[] = {"check-config", "-c", bad, NULL};
	char *def_argv[] = {"check-config", NULL};
	char *usage_argv[] = {"check-config", "extra", NULL};

	assert_int_equal(run_cmd(cmd_check_config, &out, 3, ok_argv), 0);
	assert_true(asprintf(&want, "%s: ok\n", path) > 0);
	assert_string_equal(out, want);
	free(out);
	free(want);
	assert_int_equal(run_cmd(cmd_check_config, &out, 3, bad_argv), 78);
	assert_true(asprintf(&want,
			     "%1$s:1: max_recipients: 0 is out of range (1 to 100000)\n"
			     "%1$s:2: x: unknown setting\n%1$s: 2 errors\n",
			     bad) > 0);
	assert_string_equal(out, want);
	free(out);
	free(want);
	assert_int_equal(run_cmd(cmd_check_config, &out, 1, def_argv), 0);
	assert_string_equal(out, "embedded defaults: ok\n");
	free(out);
	assert_int_equal(run_cmd(cmd_check_config, &out, 2, usage_argv), 64);
	free(out);
	unlink(path);
	unlink(bad);
	free(path);
	free(bad);
}

static void test_cli_show_config(void **state)
{
	char *path = write_conf("max_recipients = 5\n[aliases]\nhostname = alice\n");
	char *out;
	char *names_argv[] = {"show-config", "--config", path, "syslog", "max_recipients", NULL};
	char *n_argv[] = {"show-config", "-n", "--config", path, NULL};
	char *n_names_argv[] = {"show-config", "-n", "-c", path, "syslog", "max_recipients", NULL};
	char *unknown_argv[] = {"show-config", "syslog", "aliases", "hostnam", NULL};
	char *alias_argv[] = {"show-config", "-c", path, "hostname", NULL};

	assert_int_equal(run_cmd(cmd_show_config, &out, 5, names_argv), 0);
	assert_string_equal(out, "syslog = yes\nmax_recipients = 5\n");
	free(out);
	assert_int_equal(run_cmd(cmd_show_config, &out, 4, n_argv), 0);
	assert_string_equal(out, "max_recipients = 5\n\n[aliases]\nhostname = alice\n");
	free(out);
	assert_int_equal(run_cmd(cmd_show_config, &out, 6, n_names_argv), 0);
	assert_string_equal(out, "max_recipients = 5\n");
	free(out);
	assert_int_equal(run_cmd(cmd_show_config, &out, 4, unknown_argv), 64);
	assert_string_equal(out, "dialmail: show-config: unknown setting 'aliases'\n"
				 "dialmail: show-config: unknown setting 'hostnam'\n");
	free(out);
	/* The setting, not the alias of the same name. */
	assert_int_equal(run_cmd(cmd_show_config, &out, 4, alias_argv), 0);
	assert_true(strncmp(out, "hostname = ", 11) == 0);
	assert_null(strstr(out, "alice"));
	free(out);
	unlink(path);
	free(path);
}

static void read_whole(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "r");
	char chunk[4096];
	size_t n;

	if (f == NULL)
		fail_msg("cannot open %s (run from tests/unit)", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(out, chunk, n);
	fclose(f);
}

/* Every setting has a row "| `name` | type | `default` | ... |" in the docs,
 * and is named in the man page and in the example file. */
static void test_docs_list_every_setting(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT, doc = BUF_INIT, man = BUF_INIT, example = BUF_INIT;
	char *text, *line, *save = NULL;

	read_whole("../../docs/configuration.md", &doc);
	read_whole("../../man/dialmail.conf.5", &man);
	read_whole("../../etc/dialmail.conf", &example);
	assert_int_equal(config_load(&cfg, NULL, &err), 0);
	text = show(&cfg, 0);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strstr(line, " =");
		char *row, *want_default;
		assert_non_null(eq);
		*eq = '\0';
		assert_true(asprintf(&row, "\n| `%s` |", line) > 0);
		const char *at = strstr(buf_cstr(&doc), row);
		if (at == NULL)
			fail_msg("docs/configuration.md has no row for %s", line);
		const char *end = strchr(at + 1, '\n');
		/* hostname's default is the machine's own name. */
		if (eq[2])
			assert_true(asprintf(&want_default, "| `%s` |", eq + 3) > 0);
		else
			want_default = strdup("| (empty) |");
		if (strcmp(line, "hostname") != 0 &&
		    !memmem(at, (size_t)(end - at), want_default, strlen(want_default)))
			fail_msg("docs row of %s lacks default %s", line, want_default);
		if (!strstr(buf_cstr(&man), line))
			fail_msg("man/dialmail.conf.5 does not name %s", line);
		if (!strstr(buf_cstr(&example), line))
			fail_msg("etc/dialmail.conf does not name %s", line);
		free(row);
		free(want_default);
	}
	free(text);
	config_free(&cfg);
	buf_free(&doc);
	buf_free(&man);
	buf_free(&example);
	buf_free(&err);
}

/* The shipped example is valid and means what its comments say. */
static void test_example_file_loads(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;

	if (config_load(&cfg, "../../etc/dialmail.conf", &err) != 0)
		fail_msg("etc/dialmail.conf:\n%s", buf_cstr(&err));
	assert_true(config_is_local_domain(&cfg, "example.org"));
	assert_int_equal(config_alias(&cfg, "sales")->targets.n, 2);
	assert_int_equal(cfg.listen.n, 2);
	config_free(&cfg);
	buf_free(&err);
}

int main(void)
{
	modules_register();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_without_file),
	    cmocka_unit_test(test_every_type_parses),
	    cmocka_unit_test(test_size_and_duration_suffixes),
	    cmocka_unit_test(test_bounds_enforced),
	    cmocka_unit_test(test_bool_spellings),
	    cmocka_unit_test(test_all_errors_collected_with_file_and_line),
	    cmocka_unit_test(test_sections),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_cidr_errors),
	    cmocka_unit_test(test_list_items_checked),
	    cmocka_unit_test(test_listen_options),
	    cmocka_unit_test(test_aliases),
	    cmocka_unit_test(test_changes_and_keep),
	    cmocka_unit_test(test_local_domain),
	    cmocka_unit_test(test_show_config),
	    cmocka_unit_test(test_cli_check_config),
	    cmocka_unit_test(test_cli_show_config),
	    cmocka_unit_test(test_docs_list_every_setting),
	    cmocka_unit_test(test_example_file_loads),
	    cmocka_unit_test(test_secret_files_mode),
	    cmocka_unit_test(test_file_errors_name_config_line),
	    cmocka_unit_test(test_control_bytes_escaped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
