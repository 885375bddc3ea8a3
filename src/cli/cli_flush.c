/* `dialmail flush [--dir DIR]`: tells the daemon over its control socket to
 * treat every pending recipient as due, whatever its retry time. Exit 0
 * only when the daemon said "ok"; 69 (EX_UNAVAILABLE) when none answers. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "mail/config.h"
#include "cli/cli_flush.h"
#include "daemon/control.h"

int cmd_flush(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	char reply[128];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		if (c != 'd') {
			fprintf(c == 'h' ? stdout : stderr, "usage: dialmail flush [--dir DIR]\n");
			return c == 'h' ? 0 : 64;
		}
		dir = optarg;
	}
	dir = config_spool_dir(dir);
	if (control_send(dir, "flush", reply, sizeof(reply)) < 0) {
		fprintf(stderr, "dialmail flush: no daemon answers on %s/control.sock\n", dir);
		return 69;
	}
	if (strcmp(reply, "ok") != 0) {
		fprintf(stderr, "dialmail flush: the daemon said: %s\n", reply);
		return 70;
	}
	printf("flush: every queued message will be retried now\n");
	return 0;
}
