/* dialmail dial / status / sessions: the operator's view of dial-up
 * sessions. dial and status ask the running daemon over the control socket;
 * sessions reads the ledger DIR/log/sessions.jsonl. Invariant: dial exits 0
 * only when the daemon reported the session as successful. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/cli_control.h"
#include "mail/config.h"
#include "daemon/control.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/xmalloc.h"

#define EX_USAGE       64
#define EX_UNAVAILABLE 69

/* Parses --dir (and --json where allowed); returns the index of the first
 * operand, -1 after a usage message, -2 after --help (on stdout). */
static int cli_session_opts(int argc, char **argv, const char **dir, int *json, const char *usage)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:jh", opts, NULL)) != -1) {
		if (c == 'd')
			*dir = optarg;
		else if (c == 'j' && json)
			*json = 1;
		else {
			fprintf(c == 'h' ? stdout : stderr, "usage: %s\n", usage);
			return c == 'h' ? -2 : -1;
		}
	}
	*dir = config_spool_dir(*dir);
	return optind;
}

struct cli_dial {
	int result; /* -1 none yet, 0 ok, 1 failed */
};

static int cli_dial_line(const char *line, void *arg)
{
	struct cli_dial *d = arg;

	if (strncmp(line, "progress: ", 10) == 0) {
		printf("%s\n", line + 10);
	} else if (strncmp(line, "result: ok", 10) == 0) {
		printf("session ok: %s\n", line[10] ? line + 11 : "");
		d->result = 0;
	} else if (strncmp(line, "result: failed", 14) == 0) {
		printf("session failed: %s\n", line[14] ? line + 15 : "");
		d->result = 1;
	} else if (strncmp(line, "error ", 6) == 0) {
		fprintf(stderr, "dialmail dial: %s\n", line + 6);
		d->result = 1;
	} else
		printf("%s\n", line);
	fflush(stdout);
	return 0;
}

int cmd_dial(int argc, char **argv)
{
	const char *dir = NULL;
	int first = cli_session_opts(argc, argv, &dir, NULL, "dialmail dial [ENTRY] [--dir DIR]");
	struct cli_dial d = {-1};
	char *cmd;
	int rc;

	if (first < 0)
		return first == -2 ? 0 : EX_USAGE;
	if (argc - first > 1) {
		fprintf(stderr, "usage: dialmail dial [ENTRY] [--dir DIR]\n");
		return EX_USAGE;
	}
	cmd = first < argc ? xasprintf("dial %s", argv[first]) : xstrdup("dial");
	rc = control_stream(dir, cmd, cli_dial_line, &d);
	free(cmd);
	if (rc < 0 && d.result < 0)
		return cli_control_failed("dialmail dial", dir);
	if (d.result < 0) {
		fprintf(stderr, "dialmail dial: the daemon closed the connection before the "
				"session ended\n");
		return 1;
	}
	return d.result;
}

static int cli_status_line(const char *line, void *arg)
{
	printf("%s\n", line);
	return 0;
}

/* --json: each "name: value" line of the daemon becomes a member, the name
 * with '_' for blanks ("next slot" -> "next_slot"). */
static int cli_status_member(const char *line, void *arg)
{
	const char *colon = strstr(line, ": ");
	char *name;

	if (colon == NULL)
		return 0;
	name = xstrndup(line, (size_t)(colon - line));
	for (char *c = name; *c; c++)
		if (*c == ' ')
			*c = '_';
	json_object_set_new(arg, name, json_string(colon + 2));
	free(name);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	const char *dir = NULL;
	int json = 0;
	int first =
	    cli_session_opts(argc, argv, &dir, &json, "dialmail status [--dir DIR] [--json]");
	json_t *o = json_object();
	int rc = 0;

	if (first < 0) {
		json_decref(o);
		return first == -2 ? 0 : EX_USAGE;
	}
	if (control_stream(dir, "status", json ? cli_status_member : cli_status_line, o) < 0) {
		int denied = errno == EACCES || errno == EPERM;

		if (denied)
			rc = cli_control_failed("dialmail status", dir);
		else if (!json)
			printf("daemon: not running (no answer on %s/control.sock)\n", dir);
		json_object_set_new(o, "daemon",
				    json_string(denied ? "permission denied" : "not running"));
		rc = denied ? rc : EX_UNAVAILABLE;
	} else
		json_object_set_new(o, "daemon", json_string("running"));
	if (json) {
		char *dump = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", dump ? dump : "{}");
		free(dump);
	}
	json_decref(o);
	return rc;
}

/* "2026-11-25T12:07:24.123Z" -> "2026-11-25 12:07:24"; "-" for null. */
static const char *cli_when(const json_t *v, char *out, size_t len)
{
	const char *s = json_string_value(v);

	if (s == NULL)
		return "-";
	snprintf(out, len, "%.10s %.8s", s, strlen(s) > 11 ? s + 11 : "");
	return out;
}

static void cli_session_print(const json_t *o)
{
	char start[32], slot[32], next[32];
	const json_t *attempts = json_object_get(o, "attempts");
	size_t failed = 0;

	for (size_t i = 0; i < json_array_size(attempts); i++)
		if (strcmp(json_string_value(json_object_get(json_array_get(attempts, i), "cause"))
			       ?: "",
			   "connected") != 0)
			failed++;
	printf("%-19s  %-7s %-13s slot %-19s  %zu failed attempts",
	       cli_when(json_object_get(o, "start"), start, sizeof(start)),
	       json_string_value(json_object_get(o, "result")) ?: "?",
	       json_string_value(json_object_get(o, "reason")) ?: "?",
	       cli_when(json_object_get(o, "slot"), slot, sizeof(slot)), failed);
	if (json_is_string(json_object_get(o, "entry")))
		printf(", %s up %.0f s, out %lld msgs/%lld bytes, in %lld msgs/%lld bytes, %s",
		       json_string_value(json_object_get(o, "entry")),
		       json_number_value(json_object_get(o, "connect_seconds")),
		       (long long)json_integer_value(json_object_get(o, "messages_out")),
		       (long long)json_integer_value(json_object_get(o, "bytes_out")),
		       (long long)json_integer_value(json_object_get(o, "messages_in")),
		       (long long)json_integer_value(json_object_get(o, "bytes_in")),
		       json_string_value(json_object_get(o, "hangup_reason")) ?: "");
	printf("; next %s\n", cli_when(json_object_get(o, "next_slot"), next, sizeof(next)));
	for (size_t i = 0; i < json_array_size(attempts); i++) {
		const json_t *a = json_array_get(attempts, i);
		printf("    %s %s attempt %lld of %lld: %s\n",
		       json_string_value(json_object_get(a, "entry")) ?: "?",
		       json_string_value(json_object_get(a, "number")) ?: "",
		       (long long)json_integer_value(json_object_get(a, "attempt")),
		       (long long)json_integer_value(json_object_get(a, "of")),
		       json_string_value(json_object_get(a, "text")) ?: "");
	}
}

int cmd_sessions(int argc, char **argv)
{
	const char *dir = NULL;
	int json = 0;
	char *path;
	struct buf b = BUF_INIT;
	char *save = NULL;

	int first =
	    cli_session_opts(argc, argv, &dir, &json, "dialmail sessions [--dir DIR] [--json]");

	if (first < 0)
		return first == -2 ? 0 : EX_USAGE;
	path = xasprintf("%s/log/sessions.jsonl", dir);
	if (fs_read_file(path, &b) < 0) {
		if (!json)
			printf("no sessions yet (%s does not exist)\n", path);
		free(path);
		return 0;
	}
	buf_cstr(&b); /* NUL-terminates b.data */
	for (char *line = b.len ? strtok_r(b.data, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *o = json_loads(line, 0, NULL);
		if (o == NULL)
			continue; /* a torn last line */
		if (json)
			printf("%s\n", line);
		else
			cli_session_print(o);
		json_decref(o);
	}
	buf_free(&b);
	free(path);
	return 0;
}
