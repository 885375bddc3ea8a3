/* The SVG pictures (charts.h). One coordinate system for the two pictures
 * over time: x from the period's start to its end over CHART_W pixels,
 * with time ticks in local time under them. */
#include <stdio.h>
#include <string.h>

#include "status/charts.h"
#include "status/history.h"

#define CHART_W	     900
#define CHART_L	     44 /* left margin: the queue's scale */
#define CHART_R	     12
#define CHART_POINTS 450 /* queue samples drawn at most (max of each bucket) */

static const char *const chart_palette[] = {
    "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf", "#1f77b4", "#7f7f7f", "#aec7e8", "#ffbb78", "#c5b0d5",
};

const char *chart_colour(int k)
{
	int n = (int)(sizeof(chart_palette) / sizeof(chart_palette[0]));

	return chart_palette[k >= 0 && k < n ? k : n - 1];
}

void chart_escape(struct buf *out, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			buf_puts(out, "&amp;");
			break;
		case '<':
			buf_puts(out, "&lt;");
			break;
		case '>':
			buf_puts(out, "&gt;");
			break;
		case '"':
			buf_puts(out, "&quot;");
			break;
		default:
			buf_putc(out, *s);
		}
	}
}

static double chart_x(const struct history *h, time_t t)
{
	double span = h->to > h->from ? (double)(h->to - h->from) : 1;

	if (t < h->from)
		t = h->from;
	if (t > h->to)
		t = h->to;
	return CHART_L + (double)(t - h->from) * (CHART_W - CHART_L - CHART_R) / span;
}

/* Tick marks and local-time labels at y, a step that gives at most 8. */
static void chart_axis(struct buf *out, const struct history *h, int y)
{
	static const long steps[] = {60,       300,	  600,	 1800,	    3600,     3 * 3600,
				     6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400};
	long step = steps[0], span = (long)(h->to - h->from);
	struct tm tm;
	time_t t;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && span / step > 8; i++)
		step = steps[i];
	localtime_r(&h->from, &tm);
	t = h->from + step - ((h->from + tm.tm_gmtoff) % step);
	buf_printf(out, "<path class=\"ax\" d=\"M%d %dH%d\"/>", CHART_L, y, CHART_W - CHART_R);
	for (; t < h->to; t += step) {
		char label[16];
		localtime_r(&t, &tm);
		strftime(label, sizeof(label), step < 86400 ? "%H:%M" : "%m-%d", &tm);
		buf_printf(
		    out, "<path class=\"ax\" d=\"M%.1f %dv4\"/><text x=\"%.1f\" y=\"%d\">%s</text>",
		    chart_x(h, t), y, chart_x(h, t), y + 15, label);
	}
}

static void chart_open(struct buf *out, const char *id, int height, const char *label)
{
	buf_printf(out,
		   "<svg id=\"%s\" role=\"img\" aria-label=\"%s\" viewBox=\"0 0 %d %d\" "
		   "width=\"%d\" height=\"%d\">",
		   id, label, CHART_W, height, CHART_W, height);
}

/* A connected period: a bar (in the group at y 30), its bytes in a
 * tooltip. Integer pixels and short words: a week must stay small. */
static void chart_up_bar(struct buf *out, const struct history *h, const struct hist_session *s)
{
	double x0 = chart_x(h, s->up), x1 = chart_x(h, s->end);
	char t0[32];
	struct tm tm;

	localtime_r(&s->up, &tm);
	strftime(t0, sizeof(t0), "%m-%d %H:%M", &tm);
	buf_printf(out, "<rect x=\"%.0f\" width=\"%.0f\" height=\"12\"><title>", x0,
		   x1 - x0 < 2 ? 2 : x1 - x0);
	chart_escape(out, s->entry);
	buf_printf(out, " %s, %lld s: %llu B (%u) out, %llu B (%u) in</title></rect>", t0,
		   (long long)(s->end - s->up), s->bytes_out, s->msgs_out, s->bytes_in, s->msgs_in);
}

void chart_timeline(struct buf *out, const struct history *h)
{
	chart_open(out, "timeline", 66, "session timeline: dial attempts and connected periods");
	buf_printf(out, "<text x=\"0\" y=\"20\">dials</text><text x=\"0\" y=\"40\">up</text>");
	buf_puts(out, "<g class=\"up\" transform=\"translate(0 30)\">");
	for (size_t i = 0; i < h->n_ses; i++)
		if (h->ses[i].up)
			chart_up_bar(out, h, &h->ses[i]);
	buf_puts(out, "</g><g class=\"marks\" transform=\"translate(0 8)\">");
	/* the calls that connected first: a failure drawn over them stays seen */
	for (int failed = 0; failed < 2; failed++)
		for (size_t i = 0; i < h->n_att; i++) {
			int k = history_colour(h, h->att[i].cause);
			if ((k != 0) != failed)
				continue;
			buf_printf(out, "<rect class=\"k%d\" data-cause=\"", k);
			chart_escape(out, h->att[i].cause);
			buf_printf(out, "\" x=\"%.0f\" width=\"2\" height=\"16\"/>",
				   chart_x(h, h->att[i].at) - 1);
		}
	buf_puts(out, "</g>");
	chart_axis(out, h, 46);
	buf_puts(out, "</svg>\n");
}

/* The largest sample of each bucket, so that no peak is lost. */
static void chart_queue_line(struct buf *out, const struct history *h, double scale)
{
	size_t per = h->n_samples / CHART_POINTS + 1;

	buf_puts(out, "<polyline class=\"q\" points=\"");
	for (size_t i = 0; i < h->n_samples; i += per) {
		unsigned top = 0;
		for (size_t j = i; j < i + per && j < h->n_samples; j++)
			top = h->samples[j].messages > top ? h->samples[j].messages : top;
		buf_printf(out, "%.0f,%.0f ", chart_x(h, h->samples[i].at), 110 - top * scale);
	}
}

void chart_queue(struct buf *out, const struct history *h, time_t now, unsigned now_count)
{
	unsigned top = now_count;
	double scale;

	for (size_t i = 0; i < h->n_samples; i++)
		top = h->samples[i].messages > top ? h->samples[i].messages : top;
	top = top < 1 ? 1 : top;
	scale = 100.0 / top;
	chart_open(out, "queue", 132, "messages in the queue over time");
	buf_printf(out,
		   "<path class=\"grid\" d=\"M%d 10H%d\"/><text x=\"%d\" y=\"14\" "
		   "class=\"r\">%u</text><text x=\"%d\" y=\"114\" class=\"r\">0</text>",
		   CHART_L, CHART_W - CHART_R, CHART_L - 4, top, CHART_L - 4);
	chart_queue_line(out, h, scale);
	buf_printf(out, "%.0f,%.0f\"/>", chart_x(h, now), 110 - now_count * scale);
	buf_printf(out,
		   "<circle class=\"last\" data-count=\"%u\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\">"
		   "<title>now: %u messages</title></circle>",
		   now_count, chart_x(h, now), 110 - now_count * scale, now_count);
	chart_axis(out, h, 110);
	buf_puts(out, "</svg>\n");
}

void chart_failures(struct buf *out, const struct history *h)
{
	unsigned top = 1;
	int height = 20 * (int)(h->n_causes ? h->n_causes : 1) + 8;

	for (size_t i = 0; i < h->n_causes; i++)
		top = h->cause[i].n > top ? h->cause[i].n : top;
	chart_open(out, "failures", height, "failed dial attempts by cause");
	if (h->n_causes == 0)
		buf_puts(out, "<text x=\"0\" y=\"18\">no failed dial attempts</text>");
	for (size_t i = 0; i < h->n_causes; i++) {
		double w = 600.0 * h->cause[i].n / top;
		int y = 4 + 20 * (int)i;
		buf_puts(out, "<g class=\"bar\" data-cause=\"");
		chart_escape(out, h->cause[i].name);
		buf_printf(out, "\" data-count=\"%u\"><text x=\"190\" y=\"%d\" class=\"r\">",
			   h->cause[i].n, y + 12);
		chart_escape(out, h->cause[i].name);
		buf_printf(out,
			   "</text><rect class=\"k%zu\" x=\"196\" y=\"%d\" width=\"%.1f\" "
			   "height=\"14\"/><text x=\"%.1f\" y=\"%d\">%u</text></g>",
			   i + 1, y, w < 1 ? 1 : w, 200 + w, y + 12, h->cause[i].n);
	}
	buf_puts(out, "</svg>\n");
}
