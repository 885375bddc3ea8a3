/* `dialmail reload` and `dialmail reopen-logs`: ask the running daemon to do
 * what SIGHUP does (reopen its logs, reload its TLS certificate). */
#ifndef CLI_CLI_RELOAD_H
#define CLI_CLI_RELOAD_H

int cmd_reload(int argc, char **argv);
int cmd_reopen_logs(int argc, char **argv);

#endif
