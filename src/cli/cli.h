/* Subcommands of the dialmail program. Each parses its own options and
 * returns the process exit status. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

int cmd_daemon(int argc, char **argv);
int cmd_queue(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_show_config(int argc, char **argv);
int cmd_sendmail(int argc, char **argv);
int cmd_mailq(int argc, char **argv);
int cmd_dial(int argc, char **argv); /* cli_session.c */
int cmd_status(int argc, char **argv);
int cmd_sessions(int argc, char **argv);
int cmd_report(int argc, char **argv); /* cli_report.c */

#include <stdint.h>
struct queue;
/* --since: an ISO time ("2026-11-25T12:00:00Z", "2026-11-25 12:00", UTC) or
 * a duration before now (30s, 10m, 2h, 1d, 1w), in microseconds. */
int cli_parse_since(const char *s, int64_t *usec);
/* Opens the queue for reading. A state directory without a queue is an
 * empty queue: *q is NULL and nothing is created. -1 after a message. */
int cli_queue_open(const char *dir, struct queue **q);
int cmd_hash_password(int argc, char **argv); /* cli_passwd.c */

#endif
