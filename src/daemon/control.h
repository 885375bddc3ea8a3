/* Control socket DIR/control.sock: local programs (sendmail, the CLI) tell
 * the running daemon things ("kick [ID]" = new mail in the queue, ID read
 * into the index before the answer; "dial" = run a session now and stream
 * its progress, "status", "queue-count", "queue-list"). */
#ifndef DAEMON_CONTROL_H
#define DAEMON_CONTROL_H
#include <sys/types.h>

#include <event2/event.h>

struct delivery;
struct sessions;
struct control;
/* Listens on DIR/control.sock, a socket file owner:admin_gid mode 0660;
 * root, the daemon's user (at accept time) and admin_gid members may talk. */
struct control *control_listen(struct event_base *base, const char *dir, struct delivery *d,
			       uid_t owner, gid_t admin_gid);
/* Enables "queue-count [domain=D] [link=L] [state=S] [older=UNIXTIME]":
 * "ok N" (" recovering" after it while start-up recovery is not over), and
 * "queue-list [same filters]": "ok", a line per message (qindex_list),
 * "end", streamed in slices; "error recovering" before recovery is over. */
struct queue;
void control_set_queue(struct control *c, struct queue *q);
/* Enables "dial [ENTRY]" (streams the session's progress) and "status". */
void control_set_sessions(struct control *c, struct sessions *s);
/* Enables "reload" (fn does what SIGHUP does) and "reopen-logs" (fn with
 * logs_only: the logs and nothing else); fn says what in out, and returns
 * -1 when something failed. */
struct buf;
void control_set_reload(struct control *c, int (*fn)(void *arg, int logs_only, struct buf *out),
			void *arg);
void control_free(struct control *c);
/* Client side: sends one command line, reads one reply line into reply.
 * -1 if no daemon listens, or with errno EACCES if we may not talk to it
 * (the socket's mode, or the daemon said "error permission denied"). */
int control_send(const char *dir, const char *cmd, char *reply, size_t replylen);
/* Client side for streaming commands: sends cmd, calls on_line for every
 * reply line (without its newline) until the daemon closes the connection
 * or on_line returns non-zero. -1 if no daemon listens or the connection
 * broke (errno EACCES: not allowed, as control_send); else what the last
 * on_line returned. */
int control_stream(const char *dir, const char *cmd, int (*on_line)(const char *line, void *arg),
		   void *arg);

#endif
