/* Event log: every significant event has a stable id, a severity, a category
 * and a text. Written as JSON lines to DIR/log/events.jsonl and to syslog,
 * filtered by a diagnostics level per category. The catalogue of ids lives
 * in event.c and docs/events.md; a test keeps the two in step. */
#ifndef MAIL_EVENT_H
#define MAIL_EVENT_H
#include <stddef.h>

enum ev_severity { EV_ERROR, EV_WARNING, EV_INFO };

enum ev_category {
	EVC_INIT,     /* Initialization/Termination */
	EVC_SMTP,     /* SMTP Interface Events */
	EVC_TRANSFER, /* Message Transfer */
	EVC_QUEUE,    /* Queue */
	EVC_DELIVERY, /* Local Delivery */
	EVC_DIALUP,   /* Dial-up */
	EVC_SECURITY, /* Security */
	EVC_COUNT
};

/* Diagnostics levels, as the reference system: None 0, Minimum 1, Medium 3, Maximum 5. */
enum ev_level { EVL_NONE = 0, EVL_MIN = 1, EVL_MEDIUM = 3, EVL_MAX = 5 };

/* The catalogue of events, declared once, in numeric order: the enum below
 * and the table in event.c are made from it, docs/events.md has a row for
 * each (test_event keeps them in step). X(id, SYMBOL, severity, category,
 * least level written, name, summary). */
#define EVENT_CATALOGUE(X)                                                                         \
	X(1000, SERVICE_STARTED, EV_INFO, EVC_INIT, EVL_MIN, "service-started",                    \
	  "The daemon started and is accepting mail")                                              \
	X(1001, SERVICE_STOPPED, EV_INFO, EVC_INIT, EVL_MIN, "service-stopped",                    \
	  "The daemon stopped")                                                                    \
	X(1002, CONFIG_ERROR, EV_ERROR, EVC_INIT, EVL_MIN, "config-error",                         \
	  "The configuration could not be loaded")                                                 \
	X(1003, LISTEN_FAILED, EV_ERROR, EVC_INIT, EVL_MIN, "listen-failed",                       \
	  "A listen address could not be bound")                                                   \
	X(1004, LISTENING, EV_INFO, EVC_INIT, EVL_MEDIUM, "listening",                             \
	  "The SMTP server listens on an address")                                                 \
	X(1005, QUEUE_RECOVERED, EV_INFO, EVC_INIT, EVL_MEDIUM, "queue-recovered",                 \
	  "Start-up recovery of the queue finished")                                               \
	X(1006, DESCRIPTOR_LIMIT, EV_INFO, EVC_INIT, EVL_MIN, "descriptor-limit",                  \
	  "The descriptor limit and the SMTP connections it carries, at start")                    \
	X(1007, CONNECTIONS_LOWERED, EV_WARNING, EVC_INIT, EVL_MIN, "max-connections-lowered",     \
	  "max_connections is above what the descriptor limit carries; the lower figure is used")  \
	X(1008, RELOADED, EV_INFO, EVC_INIT, EVL_MIN, "reloaded",                                  \
	  "SIGHUP or dialmail reload: logs reopened, TLS certificate reloaded")                    \
	X(1009, RELOAD_FAILED, EV_WARNING, EVC_INIT, EVL_MIN, "reload-failed",                     \
	  "A reload could not reopen a log or load the new TLS certificate; the old stays")        \
	X(1030, PRIVILEGES_DROPPED, EV_INFO, EVC_INIT, EVL_MIN, "privileges-dropped",              \
	  "Started as root, the daemon opened its ports and became its unprivileged user")         \
	X(1031, RUNNING_AS_ROOT, EV_WARNING, EVC_INIT, EVL_MIN, "running-as-root",                 \
	  "Started as root with run_as_root = yes: the daemon keeps running as root")              \
	X(2001, DELIVERY_ATTEMPTED, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "delivery-attempted",       \
	  "A queue run tried to deliver messages")                                                 \
	X(2002, MESSAGE_RECEIVED, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "message-received",           \
	  "A message was received over SMTP and queued")                                           \
	X(2006, CANNOT_RESOLVE, EV_WARNING, EVC_TRANSFER, EVL_MIN, "cannot-resolve-host",          \
	  "The MX records or the address of a destination could not be found")                     \
	X(2010, CONNECTION_ACCEPTED, EV_INFO, EVC_SMTP, EVL_MAX, "connection-accepted",            \
	  "An SMTP client connected")                                                              \
	X(2011, CONNECTION_LIMIT, EV_WARNING, EVC_SMTP, EVL_MIN, "connection-limit",               \
	  "A connection was refused: too many concurrent connections")                             \
	X(2012, SESSION_TIMEOUT, EV_WARNING, EVC_SMTP, EVL_MEDIUM, "session-timeout",              \
	  "An SMTP session timed out and was closed")                                              \
	X(2013, MESSAGE_TOO_BIG, EV_WARNING, EVC_SMTP, EVL_MEDIUM, "message-too-big",              \
	  "A message was refused: larger than max_message_size")                                   \
	X(2014, MESSAGE_REFUSED_BAD_DATA, EV_WARNING, EVC_SMTP, EVL_MEDIUM,                        \
	  "message-refused-bad-data", "A message was refused: malformed data")                     \
	X(2015, SUBMITTED_LOCAL, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "submitted-local",             \
	  "A message was submitted through the sendmail interface")                                \
	X(2016, CLIENT_LIMIT, EV_WARNING, EVC_SMTP, EVL_MIN, "client-limit",                       \
	  "A client was refused: over a per-client connection or message limit")                   \
	X(2019, ACCEPT_PAUSED, EV_WARNING, EVC_SMTP, EVL_MIN, "accept-paused",                     \
	  "Out of descriptors: the SMTP listeners stop accepting for a short back-off")            \
	X(2020, LOCAL_DELIVERED, EV_INFO, EVC_DELIVERY, EVL_MEDIUM, "local-delivered",             \
	  "A message was delivered to a local Maildir")                                            \
	X(2021, LOCAL_DELIVERY_FAILED, EV_ERROR, EVC_DELIVERY, EVL_MIN, "local-delivery-failed",   \
	  "Delivery to a local Maildir failed permanently")                                        \
	X(2022, LOCAL_DELIVERY_DEFERRED, EV_WARNING, EVC_DELIVERY, EVL_MIN,                        \
	  "local-delivery-deferred",                                                               \
	  "Delivery to a local Maildir failed temporarily and will be retried")                    \
	X(2023, DUPLICATE_SUPPRESSED, EV_INFO, EVC_DELIVERY, EVL_MIN, "duplicate-suppressed",      \
	  "A message already delivered to a recipient was not delivered again")                    \
	X(2030, ETRN_RELEASED, EV_INFO, EVC_SMTP, EVL_MIN, "etrn-released",                        \
	  "A client's ETRN released the held mail of a domain")                                    \
	X(2031, ODMR_ATRN_ACCEPTED, EV_INFO, EVC_SMTP, EVL_MIN, "odmr-atrn-accepted",              \
	  "An authenticated ODMR client's ATRN was accepted; the connection is reversed")          \
	X(2040, BATCH_RECEIVED, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "batch-received",               \
	  "An XDMBATCH transfer from a dialmail peer ended; its messages are queued")              \
	X(2041, BATCH_ABORTED, EV_WARNING, EVC_TRANSFER, EVL_MIN, "batch-aborted",                 \
	  "An XDMBATCH transfer was broken off (bad frame, wrong dictionary); plain SMTP goes on") \
	X(3001, OUTBOUND_DELIVERED, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "outbound-delivered",       \
	  "A message was delivered to a remote MTA (smarthost or MX)")                             \
	X(3002, OUTBOUND_DEFERRED, EV_WARNING, EVC_TRANSFER, EVL_MIN, "outbound-deferred",         \
	  "Outbound delivery failed temporarily and will be retried")                              \
	X(3003, OUTBOUND_BOUNCED, EV_ERROR, EVC_TRANSFER, EVL_MIN, "outbound-bounced",             \
	  "Outbound delivery failed permanently or expired; the sender gets a DSN")                \
	X(3004, NO_ROUTE, EV_WARNING, EVC_TRANSFER, EVL_MIN, "no-route",                           \
	  "A recipient's domain has no route; the message stays queued")                           \
	X(3005, DSN_QUEUED, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "dsn-queued",                       \
	  "A delivery status notification (bounce or delay warning) was queued")                   \
	X(3010, CONNECT_FAILED, EV_WARNING, EVC_TRANSFER, EVL_MIN, "connect-failed",               \
	  "An outbound SMTP connection failed (timeout, greeting, TLS, AUTH, dropped)")            \
	X(3011, CONNECTION_REFUSED, EV_WARNING, EVC_TRANSFER, EVL_MIN, "connection-refused",       \
	  "An outbound SMTP connection was refused by the remote host")                            \
	X(3013, QUEUE_CORRUPT, EV_ERROR, EVC_QUEUE, EVL_MIN, "queue-corrupt",                      \
	  "A damaged queue file was moved to corrupt/")                                            \
	X(3018, DISK_LOW, EV_ERROR, EVC_QUEUE, EVL_MIN, "disk-low",                                \
	  "Free disk space is below min_free_space; mail is refused with 452")                     \
	X(3019, DISK_OK, EV_INFO, EVC_QUEUE, EVL_MIN, "disk-ok",                                   \
	  "Free disk space is back above min_free_space; mail is accepted again")                  \
	X(3020, QUEUE_WRITE_FAILED, EV_ERROR, EVC_QUEUE, EVL_MIN, "queue-write-failed",            \
	  "A message could not be written to the queue")                                           \
	X(3030, ETRN_RELEASE_DONE, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "etrn-release-done",         \
	  "The delivery of a domain's released mail is over")                                      \
	X(3031, ODMR_DELIVERY_DONE, EV_INFO, EVC_TRANSFER, EVL_MIN, "odmr-delivery-done",          \
	  "The delivery of held mail over a reversed ODMR connection is over")                     \
	X(4100, DIALUP_DIALING, EV_INFO, EVC_DIALUP, EVL_MEDIUM, "dialup-dialing",                 \
	  "A phone book entry is being dialed or brought up")                                      \
	X(4101, DIALUP_CONNECTED, EV_INFO, EVC_DIALUP, EVL_MIN, "dialup-connected",                \
	  "The dial-up connection was established")                                                \
	X(4102, DIALUP_HUNG_UP, EV_INFO, EVC_DIALUP, EVL_MIN, "dialup-hung-up",                    \
	  "The dial-up connection was hung up")                                                    \
	X(4103, DIALUP_RECOVERY, EV_WARNING, EVC_DIALUP, EVL_MIN, "dialup-recovery",               \
	  "The modem was recovered (DTR drop, reopen, init), or could not be")                     \
	X(4104, DIALUP_ENTRY_SKIPPED, EV_ERROR, EVC_DIALUP, EVL_MIN, "dialup-entry-skipped",       \
	  "A phone book entry is not dialed again this window (configuration or credentials)")     \
	X(4105, DIALUP_ROUND_FAILED, EV_ERROR, EVC_DIALUP, EVL_MIN, "dialup-round-failed",         \
	  "Every phone book entry failed in this round of attempts")                               \
	X(4106, DIALUP_FAILED, EV_ERROR, EVC_DIALUP, EVL_MIN, "dialup-failed",                     \
	  "The dial-up connection could not be made; the text carries the decoded cause")          \
	X(4110, SESSION_STARTED, EV_INFO, EVC_DIALUP, EVL_MIN, "session-started",                  \
	  "A dial-up session started (scheduled slot, catch-up, dial command, queued mail)")       \
	X(4111, SESSION_CHECK_OK, EV_INFO, EVC_DIALUP, EVL_MEDIUM, "session-link-check-ok",        \
	  "The smarthost answered with an SMTP greeting through the link")                         \
	X(4112, SESSION_CHECK_FAILED, EV_WARNING, EVC_DIALUP, EVL_MIN,                             \
	  "session-link-check-failed",                                                             \
	  "The link came up but the smarthost did not answer through it")                          \
	X(4113, SESSION_OUTBOUND_DONE, EV_INFO, EVC_DIALUP, EVL_MIN, "session-outbound-done",      \
	  "Everything queued for the link was handled during the session")                         \
	X(4114, SESSION_ENDED, EV_INFO, EVC_DIALUP, EVL_MIN, "session-ended",                      \
	  "A dial-up session ended: hung up, with the reason and what it carried")                 \
	X(4115, SESSION_MISSED, EV_ERROR, EVC_DIALUP, EVL_MIN, "session-missed",                   \
	  "A session window closed without a connection; the text lists every attempt's cause")    \
	X(4116, SESSION_CATCH_UP, EV_WARNING, EVC_DIALUP, EVL_MIN, "session-catch-up",             \
	  "A catch-up session was scheduled for a slot that was not served")                       \
	X(4117, SESSION_LINK_LOST, EV_WARNING, EVC_DIALUP, EVL_MIN, "session-link-lost",           \
	  "The link dropped during a session; unfinished mail stays queued")                       \
	X(4120, RETRIEVE_ETRN_REPLY, EV_INFO, EVC_DIALUP, EVL_MIN, "retrieve-etrn-reply",          \
	  "The provider's reply to an ETRN of the session, with its RFC 1985 meaning")             \
	X(4121, RETRIEVE_FAILED, EV_WARNING, EVC_DIALUP, EVL_MIN, "retrieve-failed",               \
	  "Inbound retrieval could not ask the provider for the held mail")                        \
	X(4122, RETRIEVE_COMMAND, EV_INFO, EVC_DIALUP, EVL_MIN, "retrieve-command",                \
	  "The retrieval command of the session ran: exit status or timeout")                      \
	X(4123, RETRIEVE_DONE, EV_INFO, EVC_DIALUP, EVL_MEDIUM, "retrieve-done",                   \
	  "Inbound retrieval is over; the session may now hang up when idle")                      \
	X(4124, RETRIEVE_ATRN, EV_INFO, EVC_DIALUP, EVL_MIN, "retrieve-atrn",                      \
	  "A step of the session's ATRN retrieval (RFC 2645) at the hub")                          \
	X(4125, RETRIEVE_TURN, EV_WARNING, EVC_DIALUP, EVL_MIN, "retrieve-turn",                   \
	  "The session's TURN retrieval (RFC 821, insecure): the provider's reply and the end")    \
	X(4130, ANSWER_READY, EV_INFO, EVC_DIALUP, EVL_MEDIUM, "answer-ready",                     \
	  "An answer line's modem is initialised and waiting for calls")                           \
	X(4131, ANSWER_CALL, EV_INFO, EVC_DIALUP, EVL_MIN, "answer-call",                          \
	  "An answer line answered a call; the ODMR port's dialogue runs on it")                   \
	X(4132, ANSWER_CALL_ENDED, EV_INFO, EVC_DIALUP, EVL_MIN, "answer-call-ended",              \
	  "A call on an answer line ended: why, how long, bytes each way")                         \
	X(4133, ANSWER_FAILED, EV_WARNING, EVC_DIALUP, EVL_MIN, "answer-failed",                   \
	  "An answer line's modem could not be opened, initialised or answer a call")              \
	X(4190, CONTROL_DENIED, EV_WARNING, EVC_SECURITY, EVL_MIN, "control-denied",               \
	  "A local program not allowed to use the control socket was turned away")                 \
	X(4192, RELAY_DENIED, EV_WARNING, EVC_SECURITY, EVL_MEDIUM, "relay-denied",                \
	  "A recipient was refused: relay access denied")                                          \
	X(4193, BARE_LINEFEED, EV_WARNING, EVC_SECURITY, EVL_MEDIUM, "bare-linefeed",              \
	  "A bare LF or CR was refused (SMTP smuggling defence)")                                  \
	X(4194, UNKNOWN_RECIPIENT, EV_WARNING, EVC_SMTP, EVL_MEDIUM, "unknown-recipient",          \
	  "A recipient was refused: no such local user")                                           \
	X(4195, AUTH_SUCCEEDED, EV_INFO, EVC_SECURITY, EVL_MEDIUM, "auth-succeeded",               \
	  "An SMTP client authenticated (AUTH)")                                                   \
	X(4196, AUTH_FAILED, EV_WARNING, EVC_SECURITY, EVL_MIN, "auth-failed",                     \
	  "An SMTP client failed to authenticate (AUTH)")                                          \
	X(4197, STARTTLS_INJECTION, EV_WARNING, EVC_SECURITY, EVL_MIN, "starttls-injection",       \
	  "Plaintext sent after STARTTLS was discarded (command injection)")                       \
	X(4198, ETRN_REFUSED, EV_WARNING, EVC_SECURITY, EVL_MIN, "etrn-refused",                   \
	  "An ETRN was refused: client not allowed, or not a held domain")                         \
	X(4199, ODMR_ATRN_REFUSED, EV_WARNING, EVC_SECURITY, EVL_MIN, "odmr-atrn-refused",         \
	  "An ATRN was refused: not authenticated, or a domain the user may not claim")

enum ev_id {
#define EV_ENUM(id, sym, ...) EV_##sym = id,
	EVENT_CATALOGUE(EV_ENUM)
#undef EV_ENUM
};

struct ev_def {
	int id;
	enum ev_severity severity;
	enum ev_category category;
	enum ev_level level; /* the least diagnostics level at which it is written */
	const char *name;    /* short symbolic name, e.g. "message-received" */
	const char *summary; /* one line for the catalogue */
};

/* Opens DIR/log/events.jsonl for appending; diag may be NULL (all medium). */
int event_open(const char *dir, const int *diag, int use_syslog);
void event_close(void);
/* Opens events.jsonl and tracking.log again under DIR/log (logrotate moved
 * them away); -1 if one could not be, which then stays on its old file. */
int event_reopen(const char *dir);
void event_set_levels(const int *diag);
/* Writes event id with printf-style text. Extra structured fields may be
 * given as NULL-terminated key/value pairs through event_logkv. */
void event_log(int id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void event_logkv(int id, const char *const *kv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const struct ev_def *event_def(int id);
const struct ev_def *event_catalogue(size_t *n);
const char *event_severity_name(enum ev_severity s);
const char *event_category_name(enum ev_category c);
const char *event_level_name(enum ev_level l);
int event_parse_level(const char *s, enum ev_level *out); /* none/minimum/medium/maximum */

/* Message tracking log (DIR/log/tracking.log), one tab-separated line per
 * step of a message, with the reference system's codes. */
enum track_code {
	TRK_QUEUED_OUTBOUND = 1010,
	TRK_SENT = 1011,
	TRK_RECEIVED = 1012,
	TRK_DELIVERED_LOCAL = 1013,
	TRK_DEFERRED = 1020,
	TRK_BOUNCED = 1021,
};
/* Called after every tracking line (the daemon's metrics count them);
 * NULL: nobody. */
void track_set_observer(void (*fn)(enum track_code code, void *arg), void *arg);
void track(enum track_code code, const char *qid, const char *msgid, const char *sender,
	   const char *rcpt, const char *detail);

#endif
