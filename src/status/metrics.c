/* The Prometheus metrics (metrics.h). Counters of labelled series are kept
 * in small lists searched linearly: a site has a handful of links, causes
 * and reasons. Names follow the Prometheus conventions (dialmail_ prefix,
 * _total for counters, base units _seconds and _bytes). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "status/metrics.h"
#include "status/queue_summary.h"
#include "dialup/ledger.h"
#include "dialup/session.h"
#include "lib/xmalloc.h"

/* The labelled counter families, in output order. */
enum mx_family {
	MX_SESSIONS,
	MX_ATTEMPTS,
	MX_CONNECT,
	MX_SENT_BYTES,
	MX_RECV_BYTES,
	MX_SENT_MSGS,
	MX_RECV_MSGS,
	MX_DELIVERED,
	MX_N
};

static const struct {
	const char *name, *help;
} mx_families[MX_N] = {
    {"dialmail_sessions_total", "Dial-up sessions ended, by result (ok, missed) and reason"},
    {"dialmail_dial_attempts_total",
     "Dial attempts by cause class and cause (class none, cause connected: the call came up)"},
    {"dialmail_link_connect_seconds_total", "Seconds a link was connected, by link"},
    {"dialmail_link_sent_bytes_total", "Bytes of mail sent during sessions, by link"},
    {"dialmail_link_received_bytes_total", "Bytes of mail received during sessions, by link"},
    {"dialmail_link_sent_messages_total", "Messages sent during sessions, by link"},
    {"dialmail_link_received_messages_total", "Messages received during sessions, by link"},
    {"dialmail_delivered_recipients_total",
     "Recipients delivered, by where (local: Maildir or mailbox server; remote: SMTP)"},
};

struct mx_series {
	char *labels; /* `a="x",b="y"`, escaped */
	double value;
};

struct mx_list {
	struct mx_series *v;
	size_t n;
};

struct metrics {
	char *dir;
	long long ledger_off;
	struct mx_list fam[MX_N];
	unsigned long long received, deferred, bounced, made_up;
	time_t last_ok; /* end of the last successful session, 0: none */
};

/* Appends s to b as a label value (backslash, quote, newline escaped). */
static void mx_label_value(struct buf *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"')
			buf_putc(b, '\\');
		if (*s == '\n')
			buf_puts(b, "\\n");
		else
			buf_putc(b, *s);
	}
}

/* `k1="v1",k2="v2"` from NULL-terminated pairs. */
static char *mx_labels(const char *const *kv)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; kv[i]; i += 2) {
		buf_printf(&b, "%s%s=\"", i ? "," : "", kv[i]);
		mx_label_value(&b, kv[i + 1] ? kv[i + 1] : "");
		buf_putc(&b, '"');
	}
	buf_cstr(&b);
	return buf_steal(&b);
}

static void mx_add(struct metrics *mx, enum mx_family f, const char *const *kv, double by)
{
	struct mx_list *l = &mx->fam[f];
	char *labels = mx_labels(kv);
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].labels, labels) == 0)
			break;
	if (i == l->n) {
		l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
		l->v[l->n].labels = labels;
		l->v[l->n++].value = 0;
	} else
		free(labels);
	l->v[i].value += by;
}

static double mx_num(const json_t *rec, const char *key)
{
	return json_number_value(json_object_get(rec, key));
}

static const char *mx_str(const json_t *rec, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(rec, key));

	return s ? s : dflt;
}

static time_t mx_session_end(const json_t *rec)
{
	return ledger_time(json_object_get(rec, "start")) +
	       (time_t)(mx_num(rec, "dial_seconds") + mx_num(rec, "connect_seconds"));
}

/* A ledger record before the start: only the last successful session. */
static void mx_on_history(json_t *rec, void *arg)
{
	struct metrics *mx = arg;

	if (strcmp(mx_str(rec, "result", ""), "ok") == 0)
		mx->last_ok = mx_session_end(rec);
}

static void mx_on_attempts(struct metrics *mx, const json_t *attempts)
{
	size_t i;
	json_t *a;

	json_array_foreach(attempts, i, a)
	{
		const char *kv[] = {"class", mx_str(a, "class", "unknown"), "cause",
				    mx_str(a, "cause", "unknown"), NULL};
		mx_add(mx, MX_ATTEMPTS, kv, 1);
	}
}

/* A session that ended since the start. */
static void mx_on_record(json_t *rec, void *arg)
{
	struct metrics *mx = arg;
	const char *result = mx_str(rec, "result", "unknown");
	const char *reason = mx_str(rec, "reason", "unknown");
	const char *skv[] = {"result", result, "reason", reason, NULL};
	const char *lkv[] = {"link", mx_str(rec, "entry", "none"), NULL};

	mx_add(mx, MX_SESSIONS, skv, 1);
	mx_on_attempts(mx, json_object_get(rec, "attempts"));
	if (strcmp(result, "ok") == 0) {
		mx->last_ok = mx_session_end(rec);
		mx->made_up += strcmp(reason, "catch-up") == 0;
	}
	if (json_is_null(json_object_get(rec, "entry")))
		return;
	mx_add(mx, MX_CONNECT, lkv, mx_num(rec, "connect_seconds"));
	mx_add(mx, MX_SENT_BYTES, lkv, mx_num(rec, "bytes_out"));
	mx_add(mx, MX_RECV_BYTES, lkv, mx_num(rec, "bytes_in"));
	mx_add(mx, MX_SENT_MSGS, lkv, mx_num(rec, "messages_out"));
	mx_add(mx, MX_RECV_MSGS, lkv, mx_num(rec, "messages_in"));
}

struct metrics *metrics_new(const char *dir)
{
	struct metrics *mx = xcalloc(1, sizeof(*mx));

	mx->dir = xstrdup(dir);
	ledger_read(dir, &mx->ledger_off, mx_on_history, mx);
	return mx;
}

void metrics_free(struct metrics *mx)
{
	if (mx == NULL)
		return;
	for (int f = 0; f < MX_N; f++) {
		for (size_t i = 0; i < mx->fam[f].n; i++)
			free(mx->fam[f].v[i].labels);
		free(mx->fam[f].v);
	}
	free(mx->dir);
	free(mx);
}

void metrics_on_track(enum track_code code, void *arg)
{
	struct metrics *mx = arg;
	const char *local[] = {"where", "local", NULL}, *remote[] = {"where", "remote", NULL};

	switch (code) {
	case TRK_RECEIVED:
		mx->received++;
		break;
	case TRK_SENT:
		mx_add(mx, MX_DELIVERED, remote, 1);
		break;
	case TRK_DELIVERED_LOCAL:
		mx_add(mx, MX_DELIVERED, local, 1);
		break;
	case TRK_DEFERRED:
		mx->deferred++;
		break;
	case TRK_BOUNCED:
		mx->bounced++;
		break;
	case TRK_QUEUED_OUTBOUND:
		break;
	}
}

static void mx_head(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family without labels: HELP, TYPE and its one sample. */
static void mx_one(struct buf *out, const char *name, const char *type, const char *help, double v)
{
	mx_head(out, name, type, help);
	buf_printf(out, "%s %.17g\n", name, v);
}

static void mx_render_families(struct metrics *mx, struct buf *out)
{
	for (int f = 0; f < MX_N; f++) {
		mx_head(out, mx_families[f].name, "counter", mx_families[f].help);
		for (size_t i = 0; i < mx->fam[f].n; i++)
			buf_printf(out, "%s{%s} %.17g\n", mx_families[f].name,
				   mx->fam[f].v[i].labels, mx->fam[f].v[i].value);
	}
	mx_one(out, "dialmail_received_recipients_total", "counter",
	       "Recipients of messages received and queued (SMTP, sendmail, DSNs)", mx->received);
	mx_one(out, "dialmail_deferred_recipients_total", "counter",
	       "Delivery attempts deferred (temporary failure, retried later)", mx->deferred);
	mx_one(out, "dialmail_bounced_recipients_total", "counter",
	       "Recipients bounced (permanent failure or expiry)", mx->bounced);
	mx_one(out, "dialmail_sessions_made_up_total", "counter",
	       "Catch-up sessions that succeeded: a missed slot made up", mx->made_up);
}

static void mx_render_queue(const struct queue_summary *q, time_t now, struct buf *out)
{
	const char *n = "dialmail_queue_messages";

	mx_head(out, n, "gauge", "Messages in the queue, by state (new, deferred, link, held)");
	for (int s = 0; s < QS_N; s++)
		buf_printf(out, "%s{state=\"%s\"} %u\n", n, queue_summary_state_name(s),
			   q->by_state[s]);
	n = "dialmail_queue_route_messages";
	mx_head(out, n, "gauge", "Messages in the queue, by the route or link they wait for");
	for (unsigned i = 0; i < q->n_routes; i++) {
		buf_printf(out, "%s{route=\"", n);
		mx_label_value(out, q->route[i].name);
		buf_printf(out, "\"} %u\n", q->route[i].messages);
	}
	mx_one(out, "dialmail_queue_oldest_message_age_seconds", "gauge",
	       "Age of the oldest queued message (0: empty queue)",
	       q->oldest && now > q->oldest ? (double)(now - q->oldest) : 0);
}

static void mx_render_link(const struct metrics *mx, const struct session_snapshot *s,
			   struct buf *out)
{
	mx_one(out, "dialmail_link_up", "gauge", "1 while a dial-up link is connected",
	       s && s->phase ? 1 : 0);
	mx_one(out, "dialmail_session_active", "gauge", "1 while a session runs (dialing or up)",
	       s && s->reason ? 1 : 0);
	mx_one(out, "dialmail_slot_owed", "gauge",
	       "1 while a scheduled slot is owed (missed and not yet made up)",
	       s && s->owed ? 1 : 0);
	mx_one(out, "dialmail_sessions_missed_in_a_row", "gauge",
	       "Sessions missed since the last successful one (0 after a success)",
	       s ? s->missed_in_a_row : 0);
	mx_one(out, "dialmail_last_successful_session_timestamp_seconds", "gauge",
	       "End of the last successful session, Unix time (0: none)", (double)mx->last_ok);
	mx_one(out, "dialmail_next_slot_timestamp_seconds", "gauge",
	       "The next scheduled slot, Unix time (0: no schedule)", s ? (double)s->next_slot : 0);
}

void metrics_render(struct metrics *mx, const struct metrics_view *v, struct buf *out)
{
	ledger_read(mx->dir, &mx->ledger_off, mx_on_record, mx);
	mx_render_families(mx, out);
	mx_render_queue(v->queue, v->now, out);
	mx_render_link(mx, v->sess, out);
	if (v->disk_known) {
		mx_one(out, "dialmail_disk_free_bytes", "gauge",
		       "Free space on the queue's file system", (double)v->disk_free);
		mx_one(out, "dialmail_disk_min_free_bytes", "gauge",
		       "min_free_space: below it new mail gets 452", (double)v->disk_min_free);
	}
}
