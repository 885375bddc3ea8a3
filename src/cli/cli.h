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
int cmd_hash_password(int argc, char **argv); /* cli_passwd.c */

#endif
