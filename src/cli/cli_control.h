/* The commands that only ask the running daemon to do one thing over its
 * control socket: flush, reload, reopen-logs. */
#ifndef CLI_CLI_CONTROL_H
#define CLI_CLI_CONTROL_H

int cmd_flush(int argc, char **argv);	    /* retry every queued message now */
int cmd_reload(int argc, char **argv);	    /* as SIGHUP */
int cmd_reopen_logs(int argc, char **argv); /* as SIGHUP, after logrotate */
/* After control_send or control_stream failed: says on stderr why ("PROG:
 * permission denied on DIR/control.sock ..." for EACCES, else "no daemon
 * answers ...") and returns the exit status (77 EX_NOPERM, 69). */
int cli_control_failed(const char *prog, const char *dir);

#endif
