/* The status page and the report (statuspage.h): tables of the live state,
 * then the period's pictures (daemon/charts.c). */
#include <stdio.h>
#include <string.h>

#include "status/charts.h"
#include "status/history.h"
#include "status/queue_summary.h"
#include "status/statuspage.h"
#include "dialup/session.h"
#include "lib/clock.h"

static const char sp_css[] =
    "body{font:14px sans-serif;margin:1em 2em;color:#222;max-width:940px}"
    "h1{font-size:20px}h2{font-size:16px;margin:1.2em 0 .3em}"
    "table{border-collapse:collapse}td,th{padding:2px 12px 2px 0;text-align:left}"
    "th{font-weight:normal;color:#555}svg{display:block;font-size:11px}"
    "svg text.r{text-anchor:end}.ax,.grid{stroke:#999;fill:none}.grid{stroke-dasharray:3}"
    ".up rect{fill:#9ecae1}.q{fill:none;stroke:#1f77b4;stroke-width:1.5}.last{fill:#1f77b4}"
    ".sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}"
    "nav a{margin-right:1em}";

static void sp_row(struct buf *out, const char *name, const char *value)
{
	buf_printf(out, "<tr><th>%s</th><td>", name);
	chart_escape(out, value);
	buf_puts(out, "</td></tr>");
}

static void sp_row_time(struct buf *out, const char *name, time_t t)
{
	char s[64];

	clock_local(t, s, sizeof(s));
	sp_row(out, name, s);
}

/* The current session: phase, bytes and messages so far. */
static void sp_session(struct buf *out, const struct session_snapshot *s, time_t now)
{
	struct buf b = BUF_INIT;

	if (s->reason == NULL) {
		sp_row(out, "session", "none");
		return;
	}
	buf_printf(&b, "%s, started %lld s ago, %d rounds, %zu failed attempts", s->reason,
		   (long long)(now - s->start_usec / 1000000), s->rounds, s->failed_attempts);
	sp_row(out, "session", buf_cstr(&b));
	buf_reset(&b);
	if (s->phase) {
		buf_printf(&b, "%s; %u messages and %llu bytes out, %u messages and %llu bytes in",
			   s->phase, s->msgs_out, s->bytes_out, s->msgs_in, s->bytes_in);
		sp_row(out, "phase", buf_cstr(&b));
	}
	buf_free(&b);
}

static void sp_live(struct buf *out, const struct session_snapshot *s, time_t now)
{
	struct buf b = BUF_INIT;

	buf_puts(out, "<h2>Link</h2><table id=\"link\">");
	buf_puts(&b, s->link);
	if (s->entry)
		buf_printf(&b, " (%s%s%s)", s->entry, s->connect ? ", " : "",
			   s->connect ? s->connect : "");
	sp_row(out, "link", buf_cstr(&b));
	sp_session(out, s, now);
	sp_row(out, "schedule", s->schedule);
	sp_row_time(out, "next slot", s->next_slot);
	sp_row_time(out, "owed slot", s->owed);
	sp_row(out, "last session", s->last_end == 0 ? "none" : s->last_ok ? "ok" : "missed");
	sp_row_time(out, "ended", s->last_end);
	buf_puts(out, "</table>\n");
	buf_free(&b);
}

static void sp_queue(struct buf *out, const struct queue_summary *q, time_t now)
{
	buf_printf(out,
		   "<h2>Queue</h2><table id=\"queue-summary\"><tr><th>messages</th>"
		   "<td id=\"queue-count\">%u</td></tr><tr><th>by state</th><td>",
		   q->messages);
	for (int i = 0; i < QS_N; i++)
		buf_printf(out, "%s%s %u", i ? ", " : "", queue_summary_state_name(i),
			   q->by_state[i]);
	buf_puts(out, "</td></tr><tr><th>by route</th><td>");
	for (unsigned i = 0; i < q->n_routes; i++) {
		buf_puts(out, i ? ", " : "");
		chart_escape(out, q->route[i].name);
		buf_printf(out, " %u", q->route[i].messages);
	}
	if (q->n_routes == 0)
		buf_puts(out, "none");
	buf_printf(out, "</td></tr><tr><th>oldest</th><td>%lld s</td></tr></table>\n",
		   q->oldest ? (long long)(now - q->oldest) : 0LL);
}

/* The colours of the causes in the period, as in the timeline. */
static void sp_legend(struct buf *out, const struct history *h)
{
	buf_printf(out,
		   "<p class=\"legend\"><span class=\"sw\" style=\"background:%s\"></span>"
		   "connected",
		   chart_colour(0));
	for (size_t i = 0; i < h->n_causes; i++) {
		buf_printf(out, "<span class=\"sw\" style=\"background:%s\"></span>",
			   chart_colour((int)i + 1));
		chart_escape(out, h->cause[i].name);
	}
	buf_printf(out, "<span class=\"sw\" style=\"background:#9ecae1\"></span>link up</p>\n");
}

/* The colour classes kN of the marks and bars. */
static void sp_style(struct buf *out)
{
	buf_printf(out, "<style>%s", sp_css);
	for (int k = 0; k <= HIST_CAUSES + 1; k++)
		buf_printf(out, ".k%d{fill:%s}", k, chart_colour(k));
	buf_puts(out, "</style>\n");
}

static void sp_nav(struct buf *out, const char *range)
{
	static const char *const ranges[][2] = {
	    {"1h", "1 hour"}, {"24h", "24 hours"}, {"7d", "7 days"}};

	buf_puts(out, "<nav>");
	for (size_t i = 0; i < 3; i++)
		if (strcmp(range, ranges[i][0]) == 0)
			buf_printf(out, "<b>%s</b> ", ranges[i][1]);
		else
			buf_printf(out, "<a href=\"/?range=%s\">%s</a> ", ranges[i][0],
				   ranges[i][1]);
	buf_puts(out, "<a href=\"/metrics\">metrics</a></nav>\n");
}

static void sp_period(struct buf *out, const struct status_view *v)
{
	const struct history *h = v->hist;
	char from[64], to[64];

	clock_local(h->from, from, sizeof(from));
	clock_local(h->to, to, sizeof(to));
	buf_printf(out, "<h2>From %s to %s</h2>", from, to);
	if (v->range)
		sp_nav(out, v->range);
	buf_printf(out,
		   "<p id=\"period\">%u sessions ok, %u missed; %zu dial attempts; %llu bytes out, "
		   "%llu bytes in</p>\n<h2>Sessions</h2>",
		   h->ok, h->missed, h->n_att, h->bytes_out, h->bytes_in);
	chart_timeline(out, h);
	sp_legend(out, h);
	buf_puts(out, "<h2>Queue over time</h2>");
	chart_queue(out, h, v->now, v->queue ? v->queue->messages : 0);
	buf_puts(out, "<h2>Failed dial attempts by cause</h2>");
	chart_failures(out, h);
}

void statuspage_render(struct buf *out, const struct status_view *v)
{
	char now[64];

	clock_local(v->now, now, sizeof(now));
	buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
	if (v->sess)
		buf_puts(out, "<meta http-equiv=\"refresh\" content=\"15\">");
	buf_printf(out, "<title>dialmail %s: ", v->title);
	chart_escape(out, v->host);
	buf_puts(out, "</title>\n");
	sp_style(out);
	buf_printf(out, "</head><body><h1>dialmail %s: ", v->title);
	chart_escape(out, v->host);
	buf_printf(out, "</h1><p>at %s</p>\n", now);
	if (v->sess)
		sp_live(out, v->sess, v->now);
	if (v->queue)
		sp_queue(out, v->queue, v->now);
	sp_period(out, v);
	buf_puts(out, "</body></html>\n");
}

long statuspage_range(const char *s)
{
	if (s == NULL || strcmp(s, "24h") == 0)
		return 86400;
	if (strcmp(s, "1h") == 0)
		return 3600;
	if (strcmp(s, "7d") == 0)
		return 7 * 86400;
	return 0;
}
