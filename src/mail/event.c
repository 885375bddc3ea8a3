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
#include <sys/stat.h>
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

/* The table of EVENT_CATALOGUE (event.h), in numeric order. */
static const struct ev_def event_defs[] = {
#define EV_DEF(id, sym, sev, cat, lvl, name, summary) {id, sev, cat, lvl, name, summary},
    EVENT_CATALOGUE(EV_DEF)
#undef EV_DEF
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
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		log_warn("event: open %s", path);
	else
		(void)fchmod(fd, 0640); /* addresses: not for others (older files were 0644) */
	free(path);
	return fd;
}

int event_open(const char *dir, const int *diag, int use_syslog)
{
	char *logdir = xasprintf("%s/log", dir);
	int rc = fs_mkdirs(logdir, 0750);

	if (rc < 0)
		log_warn("event: mkdir %s", logdir);
	else
		(void)chmod(logdir, 0750);
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

/* Points fd at a freshly opened DIR/log/name (after a logrotate rename).
 * dup2 keeps the number, so a writer on another thread never holds a
 * closed descriptor; on failure fd stays on the old file. */
static int event_reopen_file(int fd, const char *dir, const char *name)
{
	int nfd;

	if (fd < 0)
		return 0;
	nfd = event_open_file(dir, name);
	if (nfd < 0)
		return -1;
	if (dup2(nfd, fd) < 0) {
		log_warn("event: reopen %s", name);
		close(nfd);
		return -1;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	close(nfd);
	return 0;
}

int event_reopen(const char *dir)
{
	char *logdir = xasprintf("%s/log", dir);
	int rc = fs_mkdirs(logdir, 0750);

	free(logdir);
	if (event_reopen_file(event_fd, dir, "events.jsonl") < 0)
		rc = -1;
	if (event_reopen_file(event_track_fd, dir, "tracking.log") < 0)
		rc = -1;
	return rc;
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

static void (*track_observer)(enum track_code code, void *arg);
static void *track_observer_arg;

void track_set_observer(void (*fn)(enum track_code code, void *arg), void *arg)
{
	track_observer = fn;
	track_observer_arg = arg;
}

void track(enum track_code code, const char *qid, const char *msgid, const char *sender,
	   const char *rcpt, const char *detail)
{
	struct buf line = BUF_INIT;
	char when[64];

	if (track_observer)
		track_observer(code, track_observer_arg);
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
