/* `dialmail flush`: asks the running daemon to retry every queued message now. */
#ifndef CLI_CLI_FLUSH_H
#define CLI_CLI_FLUSH_H

int cmd_flush(int argc, char **argv);

#endif
