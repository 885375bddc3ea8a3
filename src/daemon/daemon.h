/* The daemon: start-up, the event loop and the wiring of every part (SMTP
 * server, queue, delivery, sessions, hub, control socket). */
#ifndef DAEMON_DAEMON_H
#define DAEMON_DAEMON_H

/* `dialmail daemon [--dir DIR] [--config FILE]`: runs until
 * SIGTERM or SIGINT; returns the process exit status. */
int cmd_daemon(int argc, char **argv);

#endif
