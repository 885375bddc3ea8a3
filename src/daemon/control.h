/* Control socket DIR/control.sock: local programs (sendmail, the CLI) tell
 * the running daemon things ("kick" = new mail in the queue). */
#ifndef DAEMON_CONTROL_H
#define DAEMON_CONTROL_H
#include <event2/event.h>

struct delivery;
struct control;
struct control *control_listen(struct event_base *base, const char *dir, struct delivery *d);
void control_free(struct control *c);
/* Client side: sends one command line, reads one reply line into reply.
 * -1 if no daemon listens. */
int control_send(const char *dir, const char *cmd, char *reply, size_t replylen);

#endif
