/* `dialmail flush|reload|reopen-logs [--dir DIR]`: send the daemon the
 * command of the same name over its control socket. flush makes every
 * pending recipient due now; reload and reopen-logs do what SIGHUP does.
 * Exit 0 only when the daemon said "ok"; 69 (EX_UNAVAILABLE) when none
 * answers; 77 (EX_NOPERM) when we may not talk to it; 70 when it said what
 * failed. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli/cli_control.h"
#include "daemon/control.h"
#include "mail/config.h"

int cli_control_failed(const char *prog, const char *dir)
{
	if (errno == EACCES || errno == EPERM) {
		fprintf(stderr,
			"%s: permission denied on %s/control.sock (the daemon answers root, its "
			"own user and its admin_group)\n",
			prog, dir);
		return EX_NOPERM;
	}
	fprintf(stderr, "%s: no daemon answers on %s/control.sock\n", prog, dir);
	return EX_UNAVAILABLE;
}

/* Sends name; the daemon answers "ok", "ok TEXT" or why it failed. done is
 * printed on success, or else "name: TEXT". */
static int control_command(const char *name, const char *done, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	char reply[1024];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		if (c != 'd') {
			fprintf(c == 'h' ? stdout : stderr, "usage: dialmail %s [--dir DIR]\n",
				name);
			return c == 'h' ? 0 : 64;
		}
		dir = optarg;
	}
	dir = config_spool_dir(dir);
	if (control_send(dir, name, reply, sizeof(reply)) < 0) {
		char prog[64];

		snprintf(prog, sizeof(prog), "dialmail %s", name);
		return cli_control_failed(prog, dir);
	}
	if (strcmp(reply, "ok") != 0 && strncmp(reply, "ok ", 3) != 0) {
		fprintf(stderr, "dialmail %s: the daemon said: %s\n", name, reply);
		return 70;
	}
	if (done)
		printf("%s\n", done);
	else
		printf("%s: %s\n", name, reply + (reply[2] ? 3 : 2));
	return 0;
}

int cmd_flush(int argc, char **argv)
{
	return control_command("flush", "flush: every queued message will be retried now", argc,
			       argv);
}

int cmd_reload(int argc, char **argv)
{
	return control_command("reload", NULL, argc, argv);
}

int cmd_reopen_logs(int argc, char **argv)
{
	return control_command("reopen-logs", NULL, argc, argv);
}
