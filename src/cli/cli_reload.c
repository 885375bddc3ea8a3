/* `dialmail reload [--dir DIR]` and `dialmail reopen-logs [--dir DIR]`: send
 * the daemon the command of the same name over its control socket; both do
 * what SIGHUP does. Exit 0 only when the daemon said "ok"; 69
 * (EX_UNAVAILABLE) when none answers; 70 when it said what failed. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_reload.h"
#include "daemon/control.h"
#include "mail/config.h"

static int reload_run(const char *name, int argc, char **argv)
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
		fprintf(stderr, "dialmail %s: no daemon answers on %s/control.sock\n", name, dir);
		return 69;
	}
	if (strncmp(reply, "ok ", 3) != 0) {
		fprintf(stderr, "dialmail %s: the daemon said: %s\n", name, reply);
		return 70;
	}
	printf("%s: %s\n", name, reply + 3);
	return 0;
}

int cmd_reload(int argc, char **argv)
{
	return reload_run("reload", argc, argv);
}

int cmd_reopen_logs(int argc, char **argv)
{
	return reload_run("reopen-logs", argc, argv);
}
