/* Event log and message tracking log: JSON lines in DIR/log/events.jsonl,
 * syslog, and tab-separated lines in DIR/log/tracking.log. Invariant: every
 * record is written with one write() on an O_APPEND descriptor, so records
 * from the daemon and from sendmail never interleave within a line. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include <jansson.h>
#include <pthread.h>

#include "mail/event.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

/* The catalogue; docs/events.md describes each entry and a unit test keeps
 * the two, and the enum in event.h, in step. */
static const struct ev_def event_defs[] = {
    {EV_SERVICE_STARTED, EV_INFO, EVC_INIT, EVL_MIN, "service-started",
     "The daemon started and is accepting mail"},
    {EV_SERVICE_STOPPED, EV_INFO, EVC_INIT, EVL_MIN, "service-stopped", "The daemon stopped"},
    {EV_CONFIG_ERROR, EV_ERROR, EVC_INIT, EVL_MIN, "config-error",
     "The configuration could not be loaded"},
    {EV_LISTEN_FAILED, EV_ERROR, EVC_INIT, EVL_MIN, "listen-failed",
     "A listen address could not be bound"},
    {EV_LISTENING, EV_INFO, EVC_INIT, EVL_MEDIUM, "listening",
     "The SMTP server listens on an address"},
    {EV_QUEUE_RECOVERED, EV_INFO, EVC_INIT, EVL_MEDIUM, "queue-recovered",
     "Start-up recovery of the queue finished"},
    {EV_DELIVERY_ATTEMPTED, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "delivery-attempted",
     "A queue run tried to deliver messages"},
    {EV_MESSAGE_RECEIVED, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "message-received",
     "A message was received over SMTP and queued"},
    {EV_CONNECTION_ACCEPTED, EV_INFO, EVC_SMTP, EVL_MAX, "connection-accepted",
     "An SMTP client connected"},
    {EV_CONNECTION_LIMIT, EV_WARNING, EVC_SMTP, EVL_MIN, "connection-limit",
     "A connection was refused: too many concurrent connections"},
    {EV_SESSION_TIMEOUT, EV_WARNING, EVC_SMTP, EVL_MEDIUM, "session-timeout",
     "An SMTP session timed out and was closed"},
    {EV_MESSAGE_TOO_BIG, EV_WARNING, EVC_SMTP, EVL_MEDIUM, "message-too-big",
     "A message was refused: larger than max_message_size"},
    {EV_MESSAGE_REFUSED_BAD_DATA, EV_WARNING, EVC_SMTP, EVL_MEDIUM, "message-refused-bad-data",
     "A message was refused: malformed data"},
    {EV_SUBMITTED_LOCAL, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "submitted-local",
     "A message was submitted through the sendmail interface"},
    {EV_LOCAL_DELIVERED, EV_INFO, EVC_DELIVERY, EVL_MEDIUM, "local-delivered",
     "A message was delivered to a local Maildir"},
    {EV_LOCAL_DELIVERY_FAILED, EV_ERROR, EVC_DELIVERY, EVL_MIN, "local-delivery-failed",
     "Delivery to a local Maildir failed permanently"},
    {EV_LOCAL_DELIVERY_DEFERRED, EV_WARNING, EVC_DELIVERY, EVL_MIN, "local-delivery-deferred",
     "Delivery to a local Maildir failed temporarily and will be retried"},
    {EV_CANNOT_RESOLVE, EV_WARNING, EVC_TRANSFER, EVL_MIN, "cannot-resolve-host",
     "The MX records or the address of a destination could not be found"},
    {EV_OUTBOUND_DELIVERED, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "outbound-delivered",
     "A message was delivered to a remote MTA (smarthost or MX)"},
    {EV_OUTBOUND_DEFERRED, EV_WARNING, EVC_TRANSFER, EVL_MIN, "outbound-deferred",
     "Outbound delivery failed temporarily and will be retried"},
    {EV_OUTBOUND_BOUNCED, EV_ERROR, EVC_TRANSFER, EVL_MIN, "outbound-bounced",
     "Outbound delivery failed permanently or expired; the sender gets a DSN"},
    {EV_NO_ROUTE, EV_WARNING, EVC_TRANSFER, EVL_MIN, "no-route",
     "A recipient's domain has no route; the message stays queued"},
    {EV_DSN_QUEUED, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "dsn-queued",
     "A delivery status notification (bounce or delay warning) was queued"},
    {EV_CONNECT_FAILED, EV_WARNING, EVC_TRANSFER, EVL_MIN, "connect-failed",
     "An outbound SMTP connection failed (timeout, greeting, TLS, AUTH, dropped)"},
    {EV_CONNECTION_REFUSED, EV_WARNING, EVC_TRANSFER, EVL_MIN, "connection-refused",
     "An outbound SMTP connection was refused by the remote host"},
    {EV_QUEUE_CORRUPT, EV_ERROR, EVC_QUEUE, EVL_MIN, "queue-corrupt",
     "A damaged queue file was moved to corrupt/"},
    {EV_DISK_LOW, EV_ERROR, EVC_QUEUE, EVL_MIN, "disk-low",
     "Free disk space is below min_free_space; mail is refused with 452"},
    {EV_DISK_OK, EV_INFO, EVC_QUEUE, EVL_MIN, "disk-ok",
     "Free disk space is back above min_free_space; mail is accepted again"},
    {EV_QUEUE_WRITE_FAILED, EV_ERROR, EVC_QUEUE, EVL_MIN, "queue-write-failed",
     "A message could not be written to the queue"},
    {EV_DIALUP_DIALING, EV_INFO, EVC_DIALUP, EVL_MEDIUM, "dialup-dialing",
     "A phone book entry is being dialed or brought up"},
    {EV_DIALUP_CONNECTED, EV_INFO, EVC_DIALUP, EVL_MIN, "dialup-connected",
     "The dial-up connection was established"},
    {EV_DIALUP_HUNG_UP, EV_INFO, EVC_DIALUP, EVL_MIN, "dialup-hung-up",
     "The dial-up connection was hung up"},
    {EV_DIALUP_RECOVERY, EV_WARNING, EVC_DIALUP, EVL_MIN, "dialup-recovery",
     "The modem was recovered (DTR drop, reopen, init), or could not be"},
    {EV_DIALUP_ENTRY_SKIPPED, EV_ERROR, EVC_DIALUP, EVL_MIN, "dialup-entry-skipped",
     "A phone book entry is not dialed again this window (configuration or credentials)"},
    {EV_DIALUP_ROUND_FAILED, EV_ERROR, EVC_DIALUP, EVL_MIN, "dialup-round-failed",
     "Every phone book entry failed in this round of attempts"},
    {EV_DIALUP_FAILED, EV_ERROR, EVC_DIALUP, EVL_MIN, "dialup-failed",
     "The dial-up connection could not be made; the text carries the decoded cause"},
    {EV_SESSION_STARTED, EV_INFO, EVC_DIALUP, EVL_MIN, "session-started",
     "A dial-up session started (scheduled slot, catch-up, dial command, queued mail)"},
    {EV_SESSION_CHECK_OK, EV_INFO, EVC_DIALUP, EVL_MEDIUM, "session-link-check-ok",
     "The smarthost answered with an SMTP greeting through the link"},
    {EV_SESSION_CHECK_FAILED, EV_WARNING, EVC_DIALUP, EVL_MIN, "session-link-check-failed",
     "The link came up but the smarthost did not answer through it"},
    {EV_SESSION_OUTBOUND_DONE, EV_INFO, EVC_DIALUP, EVL_MIN, "session-outbound-done",
     "Everything queued for the link was handled during the session"},
    {EV_SESSION_ENDED, EV_INFO, EVC_DIALUP, EVL_MIN, "session-ended",
     "A dial-up session ended: hung up, with the reason and what it carried"},
    {EV_SESSION_MISSED, EV_ERROR, EVC_DIALUP, EVL_MIN, "session-missed",
     "A session window closed without a connection; the text lists every attempt's cause"},
    {EV_SESSION_CATCH_UP, EV_WARNING, EVC_DIALUP, EVL_MIN, "session-catch-up",
     "A catch-up session was scheduled for a slot that was not served"},
    {EV_SESSION_LINK_LOST, EV_WARNING, EVC_DIALUP, EVL_MIN, "session-link-lost",
     "The link dropped during a session; unfinished mail stays queued"},
    {EV_RETRIEVE_ETRN_REPLY, EV_INFO, EVC_DIALUP, EVL_MIN, "retrieve-etrn-reply",
     "The provider's reply to an ETRN of the session, with its RFC 1985 meaning"},
    {EV_RETRIEVE_FAILED, EV_WARNING, EVC_DIALUP, EVL_MIN, "retrieve-failed",
     "Inbound retrieval could not ask the provider for the held mail"},
    {EV_RETRIEVE_COMMAND, EV_INFO, EVC_DIALUP, EVL_MIN, "retrieve-command",
     "The retrieval command of the session ran: exit status or timeout"},
    {EV_RETRIEVE_DONE, EV_INFO, EVC_DIALUP, EVL_MEDIUM, "retrieve-done",
     "Inbound retrieval is over; the session may now hang up when idle"},
    {EV_ETRN_RELEASED, EV_INFO, EVC_SMTP, EVL_MIN, "etrn-released",
     "A client's ETRN released the held mail of a domain"},
    {EV_ETRN_REFUSED, EV_WARNING, EVC_SECURITY, EVL_MIN, "etrn-refused",
     "An ETRN was refused: client not allowed, or not a held domain"},
    {EV_ETRN_RELEASE_DONE, EV_INFO, EVC_TRANSFER, EVL_MEDIUM, "etrn-release-done",
     "The delivery of a domain's released mail is over"},
    {EV_DUPLICATE_SUPPRESSED, EV_INFO, EVC_DELIVERY, EVL_MIN, "duplicate-suppressed",
     "A message already delivered to a recipient was not delivered again"},
    {EV_ODMR_ATRN_ACCEPTED, EV_INFO, EVC_SMTP, EVL_MIN, "odmr-atrn-accepted",
     "An authenticated ODMR client's ATRN was accepted; the connection is reversed"},
    {EV_ODMR_ATRN_REFUSED, EV_WARNING, EVC_SECURITY, EVL_MIN, "odmr-atrn-refused",
     "An ATRN was refused: not authenticated, or a domain the user may not claim"},
    {EV_ODMR_DELIVERY_DONE, EV_INFO, EVC_TRANSFER, EVL_MIN, "odmr-delivery-done",
     "The delivery of held mail over a reversed ODMR connection is over"},
    {EV_RETRIEVE_ATRN, EV_INFO, EVC_DIALUP, EVL_MIN, "retrieve-atrn",
     "A step of the session's ATRN retrieval (RFC 2645) at the hub"},
    {EV_RETRIEVE_TURN, EV_WARNING, EVC_DIALUP, EVL_MIN, "retrieve-turn",
     "The session's TURN retrieval (RFC 821, insecure): the provider's reply and the end"},
    {EV_ANSWER_READY, EV_INFO, EVC_DIALUP, EVL_MEDIUM, "answer-ready",
     "An answer line's modem is initialised and waiting for calls"},
    {EV_ANSWER_CALL, EV_INFO, EVC_DIALUP, EVL_MIN, "answer-call",
     "An answer line answered a call; the ODMR port's dialogue runs on it"},
    {EV_ANSWER_CALL_ENDED, EV_INFO, EVC_DIALUP, EVL_MIN, "answer-call-ended",
     "A call on an answer line ended: why, how long, bytes each way"},
    {EV_ANSWER_FAILED, EV_WARNING, EVC_DIALUP, EVL_MIN, "answer-failed",
     "An answer line's modem could not be opened, initialised or answer a call"},
    {EV_RELAY_DENIED, EV_WARNING, EVC_SECURITY, EVL_MEDIUM, "relay-denied",
     "A recipient was refused: relay access denied"},
    {EV_BARE_LINEFEED, EV_WARNING, EVC_SECURITY, EVL_MEDIUM, "bare-linefeed",
     "A bare LF or CR was refused (SMTP smuggling defence)"},
    {EV_UNKNOWN_RECIPIENT, EV_WARNING, EVC_SMTP, EVL_MEDIUM, "unknown-recipient",
     "A recipient was refused: no such local user"},
    {EV_AUTH_SUCCEEDED, EV_INFO, EVC_SECURITY, EVL_MEDIUM, "auth-succeeded",
     "An SMTP client authenticated (AUTH)"},
    {EV_AUTH_FAILED, EV_WARNING, EVC_SECURITY, EVL_MIN, "auth-failed",
     "An SMTP client failed to authenticate (AUTH)"},
    {EV_STARTTLS_INJECTION, EV_WARNING, EVC_SECURITY, EVL_MIN, "starttls-injection",
     "Plaintext sent after STARTTLS was discarded (command injection)"},
};

#define EVENT_NDEFS (sizeof(event_defs) / sizeof(event_defs[0]))

static const char *const event_category_names[EVC_COUNT] = {
    "Initialization/Termination",
    "SMTP Interface Events",
    "Message Transfer",
    "Queue",
    "Local Delivery",
    "Dial-up",
    "Security",
};

static int event_fd = -1;
static int event_track_fd = -1;
static int event_syslog;
static int event_warned; /* a write failure was reported; quiet until one succeeds */
static int event_diag[EVC_COUNT] = {EVL_MEDIUM, EVL_MEDIUM, EVL_MEDIUM, EVL_MEDIUM,
				    EVL_MEDIUM, EVL_MEDIUM, EVL_MEDIUM};

const struct ev_def *event_def(int id)
{
	for (size_t i = 0; i < EVENT_NDEFS; i++)
		if (event_defs[i].id == id)
			return &event_defs[i];
	return NULL;
}

const struct ev_def *event_catalogue(size_t *n)
{
	if (n)
		*n = EVENT_NDEFS;
	return event_defs;
}

const char *event_severity_name(enum ev_severity s)
{
	switch (s) {
	case EV_ERROR:
		return "error";
	case EV_WARNING:
		return "warning";
	case EV_INFO:
		return "information";
	}
	return "unknown";
}

const char *event_category_name(enum ev_category c)
{
	if ((int)c < 0 || c >= EVC_COUNT)
		return "unknown";
	return event_category_names[c];
}

const char *event_level_name(enum ev_level l)
{
	switch (l) {
	case EVL_NONE:
		return "none";
	case EVL_MIN:
		return "minimum";
	case EVL_MEDIUM:
		return "medium";
	case EVL_MAX:
		return "maximum";
	}
	return "unknown";
}

int event_parse_level(const char *s, enum ev_level *out)
{
	static const struct {
		const char *name;
		enum ev_level level;
	} names[] = {
	    {"none", EVL_NONE}, {"minimum", EVL_MIN}, {"medium", EVL_MEDIUM}, {"maximum", EVL_MAX},
	    {"0", EVL_NONE},	{"1", EVL_MIN},	      {"3", EVL_MEDIUM},      {"5", EVL_MAX},
	};

	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return -1;
}

void event_set_levels(const int *diag)
{
	for (int c = 0; c < EVC_COUNT; c++)
		event_diag[c] = diag ? diag[c] : EVL_MEDIUM;
}

/* Opens one log file for appending; -1 with a warning on failure. */
static int event_open_file(const char *dir, const char *name)
{
	char *path = xasprintf("%s/log/%s", dir, name);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		log_warn("event: open %s", path);
	free(path);
	return fd;
}

int event_open(const char *dir, const int *diag, int use_syslog)
{
	char *logdir = xasprintf("%s/log", dir);
	int rc = fs_mkdirs(logdir, 0755);

	if (rc < 0)
		log_warn("event: mkdir %s", logdir);
	free(logdir);
	if (rc < 0)
		return -1;
	event_close();
	event_set_levels(diag);
	event_fd = event_open_file(dir, "events.jsonl");
	event_track_fd = event_open_file(dir, "tracking.log");
	if (event_fd < 0 || event_track_fd < 0) {
		event_close();
		return -1;
	}
	event_syslog = use_syslog;
	if (use_syslog)
		openlog("dialmail", LOG_PID | LOG_NDELAY, LOG_MAIL);
	return 0;
}

void event_close(void)
{
	if (event_fd >= 0)
		close(event_fd);
	if (event_track_fd >= 0)
		close(event_track_fd);
	event_fd = event_track_fd = -1;
	event_syslog = 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t event_utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned min;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f, min = 0x80;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f, min = 0x800;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Copy of s with invalid UTF-8 bytes replaced by '?', since JSON strings
 * must be UTF-8 and text may carry bytes from the network. */
static char *event_utf8_clean(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(n + 1);

	for (size_t i = 0; i < n;) {
		size_t len = event_utf8_len((const unsigned char *)s + i, n - i);

		if (len == 0) {
			out[i++] = '?';
			continue;
		}
		memcpy(out + i, s + i, len);
		i += len;
	}
	out[n] = '\0';
	return out;
}

static int event_reserved_key(const char *key)
{
	static const char *const keys[] = {"time", "id", "severity", "category", "text"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i]) == 0)
			return 1;
	return 0;
}

/* Builds the JSON line (with its newline) for one event. */
static char *event_json(const struct ev_def *def, const char *text, const char *const *kv)
{
	char when[64];
	char *clean = event_utf8_clean(text);
	json_t *obj;
	char *dump;
	char *line;

	clock_iso8601(clock_usec(), when, sizeof(when));
	obj = json_pack("{s:s, s:i, s:s, s:s, s:s}", "time", when, "id", def->id, "severity",
			event_severity_name(def->severity), "category",
			event_category_name(def->category), "text", clean);
	free(clean);
	if (!obj)
		panic("event: json_pack failed for event %d", def->id);
	for (size_t i = 0; kv && kv[i]; i += 2) {
		char *val;

		if (!kv[i + 1])
			continue; /* a missing value leaves its key out */
		if (event_reserved_key(kv[i]))
			panic("event: event %d: extra field \"%s\" is reserved", def->id, kv[i]);
		val = event_utf8_clean(kv[i + 1]);
		json_object_set_new(obj, kv[i], json_string(val));
		free(val);
	}
	dump = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (!dump)
		panic("event: json_dumps failed for event %d", def->id);
	line = xasprintf("%s\n", dump);
	free(dump);
	return line;
}

/* Serialises writers: the session worker thread logs dial-up events. */
static pthread_mutex_t event_mutex = PTHREAD_MUTEX_INITIALIZER;

/* One write() so that concurrent appenders never split a line. */
static void event_append(int fd, const char *what, const char *line)
{
	size_t len = strlen(line);
	ssize_t n;

	pthread_mutex_lock(&event_mutex);
	n = write(fd, line, len);
	if (n == (ssize_t)len)
		event_warned = 0;
	else if (!event_warned) {
		log_warn("event: cannot write %s", what);
		event_warned = 1;
	}
	pthread_mutex_unlock(&event_mutex);
}

static int event_syslog_prio(enum ev_severity s)
{
	switch (s) {
	case EV_ERROR:
		return LOG_ERR;
	case EV_WARNING:
		return LOG_WARNING;
	case EV_INFO:
		break;
	}
	return LOG_INFO;
}

static void event_vlog(int id, const char *const *kv, const char *fmt, va_list ap)
{
	const struct ev_def *def = event_def(id);
	struct buf text = BUF_INIT;
	char *line;

	if (!def)
		panic("event: unknown event id %d", id);
	if ((int)def->level > event_diag[def->category] || event_diag[def->category] == EVL_NONE)
		return;
	buf_vprintf(&text, fmt, ap);
	if (event_fd < 0) {
		fprintf(stderr, "dialmail: event %d %s: %s\n", id,
			event_severity_name(def->severity), buf_cstr(&text));
		buf_free(&text);
		return;
	}
	line = event_json(def, buf_cstr(&text), kv);
	event_append(event_fd, "events.jsonl", line);
	if (event_syslog)
		syslog(LOG_MAIL | event_syslog_prio(def->severity), "event %d: %s", id,
		       buf_cstr(&text));
	free(line);
	buf_free(&text);
}

void event_log(int id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	event_vlog(id, NULL, fmt, ap);
	va_end(ap);
}

void event_logkv(int id, const char *const *kv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	event_vlog(id, kv, fmt, ap);
	va_end(ap);
}

/* Appends one tracking field: control characters become spaces, and an
 * empty field is "-" so that every line has the same number of columns. */
static void event_track_field(struct buf *b, const char *s)
{
	buf_putc(b, '\t');
	if (!s || !*s) {
		buf_putc(b, '-');
		return;
	}
	for (; *s; s++)
		buf_putc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
}

void track(enum track_code code, const char *qid, const char *msgid, const char *sender,
	   const char *rcpt, const char *detail)
{
	struct buf line = BUF_INIT;
	char when[64];

	if (event_track_fd < 0)
		return;
	clock_iso8601(clock_usec(), when, sizeof(when));
	buf_printf(&line, "%s\t%d", when, (int)code);
	event_track_field(&line, qid);
	event_track_field(&line, msgid);
	event_track_field(&line, sender);
	event_track_field(&line, rcpt);
	event_track_field(&line, detail);
	buf_putc(&line, '\n');
	event_append(event_track_fd, "tracking.log", buf_cstr(&line));
	buf_free(&line);
}
