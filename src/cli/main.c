/* dialmail: one program, subcommands chosen from a table. Invoked as
 * "sendmail" or "mailq" (argv[0]) it behaves like those commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_control.h"
#include "daemon/daemon.h"
#include "daemon/modules.h"
#include "mail/config.h"
#include "lib/log.h"

static int cmd_version(int argc, char **argv)
{
	printf("dialmail %s\n", DIALMAIL_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv);

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
    {"daemon", cmd_daemon, "run the mail gateway (--dir DIR, --config FILE)"},
    {"queue", cmd_queue, "list the queue; queue show ID (--json)"},
    {"events", cmd_events, "read the event log (--id, --severity, --category, --since, --json)"},
    {"check-config", cmd_check_config, "check a configuration file"},
    {"show-config", cmd_show_config, "print effective settings (-n: only changed)"},
    {"sendmail", cmd_sendmail, "sendmail interface: queue a message from stdin"},
    {"mailq", cmd_mailq, "list the queue (as mailq)"},
    {"dial", cmd_dial, "run a dial-up session now and show its progress ([ENTRY], --dir)"},
    {"status", cmd_status, "link state, next scheduled session, queue counts (--dir)"},
    {"sessions", cmd_sessions, "the session ledger (--dir, --json)"},
    {"report", cmd_report, "the status pictures of a period as one HTML file (--since 30d, -o)"},
    {"flush", cmd_flush, "retry every queued message now (--dir DIR)"},
    {"reload", cmd_reload, "as SIGHUP: reopen the logs, reload the TLS certificate (--dir)"},
    {"reopen-logs", cmd_reopen_logs, "as SIGHUP, after logrotate (--dir DIR)"},
    {"hash-password", cmd_hash_password, "a crypt(3) hash for auth_users_file (stdin)"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "this list"},
};

static int cmd_help(int argc, char **argv)
{
	printf("usage: dialmail COMMAND [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %-13s %s\n", commands[i].name, commands[i].help);
	return 0;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	const struct command *cmd;

	base = base ? base + 1 : argv[0];
	log_init("dialmail", 1, 0);
	modules_register();
	if (strcmp(base, "sendmail") == 0 || strcmp(base, "mailq") == 0)
		return find_command(base)->run(argc, argv);
	if (strcmp(base, "newaliases") == 0)
		return cmd_sendmail(argc, argv); /* sendmail -bi */
	if (argc < 2) {
		cmd_help(0, NULL);
		return 64;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(0, NULL);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(0, NULL);
	cmd = find_command(argv[1]);
	if (cmd == NULL) {
		fprintf(stderr, "dialmail: unknown command '%s' (try: dialmail help)\n", argv[1]);
		return 64;
	}
	return cmd->run(argc - 1, argv + 1);
}
