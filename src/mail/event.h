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

enum ev_id {
	EV_SERVICE_STARTED = 1000,
	EV_SERVICE_STOPPED = 1001,
	EV_CONFIG_ERROR = 1002,
	EV_LISTEN_FAILED = 1003,
	EV_LISTENING = 1004,
	EV_QUEUE_RECOVERED = 1005,
	EV_DELIVERY_ATTEMPTED = 2001,
	EV_MESSAGE_RECEIVED = 2002,
	EV_CANNOT_RESOLVE = 2006,
	EV_CONNECTION_ACCEPTED = 2010,
	EV_CONNECTION_LIMIT = 2011,
	EV_SESSION_TIMEOUT = 2012,
	EV_MESSAGE_TOO_BIG = 2013,
	EV_MESSAGE_REFUSED_BAD_DATA = 2014,
	EV_SUBMITTED_LOCAL = 2015,
	EV_LOCAL_DELIVERED = 2020,
	EV_LOCAL_DELIVERY_FAILED = 2021,
	EV_LOCAL_DELIVERY_DEFERRED = 2022,
	EV_OUTBOUND_DELIVERED = 3001,
	EV_OUTBOUND_DEFERRED = 3002,
	EV_OUTBOUND_BOUNCED = 3003,
	EV_NO_ROUTE = 3004,
	EV_DSN_QUEUED = 3005,
	EV_CONNECT_FAILED = 3010,
	EV_CONNECTION_REFUSED = 3011,
	EV_QUEUE_CORRUPT = 3013,
	EV_DISK_LOW = 3018,
	EV_DISK_OK = 3019,
	EV_QUEUE_WRITE_FAILED = 3020,
	EV_RELAY_DENIED = 4192,
	EV_BARE_LINEFEED = 4193,
	EV_UNKNOWN_RECIPIENT = 4194,
	EV_AUTH_SUCCEEDED = 4195,
	EV_AUTH_FAILED = 4196,
	EV_STARTTLS_INJECTION = 4197,
	EV_DIALUP_DIALING = 4100,
	EV_DIALUP_CONNECTED = 4101,
	EV_DIALUP_HUNG_UP = 4102,
	EV_DIALUP_RECOVERY = 4103,
	EV_DIALUP_ENTRY_SKIPPED = 4104,
	EV_DIALUP_ROUND_FAILED = 4105,
	EV_DIALUP_FAILED = 4106, /* every failed attempt, with its decoded cause */
	EV_SESSION_STARTED = 4110,
	EV_SESSION_CHECK_OK = 4111,
	EV_SESSION_CHECK_FAILED = 4112,
	EV_SESSION_OUTBOUND_DONE = 4113,
	EV_SESSION_ENDED = 4114,
	EV_SESSION_MISSED = 4115,
	EV_SESSION_CATCH_UP = 4116,
	EV_SESSION_LINK_LOST = 4117,
	EV_RETRIEVE_ETRN_REPLY = 4120, /* issue 5: the session's inbound retrieval */
	EV_RETRIEVE_FAILED = 4121,
	EV_RETRIEVE_COMMAND = 4122,
	EV_RETRIEVE_DONE = 4123,
	EV_ETRN_RELEASED = 2030, /* issue 5: the hub */
	EV_ETRN_REFUSED = 4198,
	EV_ETRN_RELEASE_DONE = 3030,
	EV_DUPLICATE_SUPPRESSED = 2023,
	EV_ODMR_ATRN_ACCEPTED = 2031, /* issue 5: ODMR (RFC 2645), hub/odmr.c */
	EV_ODMR_ATRN_REFUSED = 4199,
	EV_ODMR_DELIVERY_DONE = 3031,
	EV_RETRIEVE_ATRN = 4124,
	EV_RETRIEVE_TURN = 4125, /* retrieve = turn (RFC 821), dialup/turn.c */
	EV_ANSWER_READY = 4130,	 /* [answer NAME] lines, hub/answer.c */
	EV_ANSWER_CALL = 4131,
	EV_ANSWER_CALL_ENDED = 4132,
	EV_ANSWER_FAILED = 4133,
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
void track(enum track_code code, const char *qid, const char *msgid, const char *sender,
	   const char *rcpt, const char *detail);

#endif
