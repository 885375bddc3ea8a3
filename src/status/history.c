/* The period's history (history.h), from DIR/log/sessions.jsonl and
 * DIR/queue.samples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "status/history.h"
#include "dialup/ledger.h"
#include "lib/xmalloc.h"

static const char *hist_str(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : dflt;
}

static double hist_num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static void hist_count_cause(struct history *h, const char *cause)
{
	size_t i;

	for (i = 0; i < h->n_causes; i++)
		if (strcmp(h->cause[i].name, cause) == 0)
			break;
	if (i == h->n_causes) {
		if (h->n_causes == HIST_CAUSES)
			cause = "other";
		snprintf(h->cause[i].name, sizeof(h->cause[i].name), "%s", cause);
		if (i == h->n_causes)
			h->n_causes++;
	}
	h->cause[i].n++;
}

static void hist_attempts(struct history *h, const json_t *attempts, time_t start)
{
	size_t i;
	json_t *a;

	json_array_foreach(attempts, i, a)
	{
		const char *cause = hist_str(a, "cause", "unknown");
		time_t at = ledger_time(json_object_get(a, "time"));
		struct hist_attempt *x;

		at = at ? at : start;
		if (at < h->from || at > h->to)
			continue;
		h->att = xrealloc(h->att, (h->n_att + 1) * sizeof(*h->att));
		x = &h->att[h->n_att++];
		x->at = at;
		snprintf(x->cause, sizeof(x->cause), "%s", cause);
		if (strcmp(cause, "connected") != 0)
			hist_count_cause(h, cause);
	}
}

static void hist_on_record(json_t *rec, void *arg)
{
	struct history *h = arg;
	struct hist_session s = {0};
	double dial = hist_num(rec, "dial_seconds"), up = hist_num(rec, "connect_seconds");

	s.start = ledger_time(json_object_get(rec, "start"));
	s.ok = strcmp(hist_str(rec, "result", ""), "ok") == 0;
	s.up = json_is_null(json_object_get(rec, "entry")) ? 0 : s.start + (time_t)dial;
	s.end = s.start + (time_t)(dial + up);
	if (s.end < h->from || s.start > h->to)
		return;
	hist_attempts(h, json_object_get(rec, "attempts"), s.start);
	s.bytes_out = (unsigned long long)hist_num(rec, "bytes_out");
	s.bytes_in = (unsigned long long)hist_num(rec, "bytes_in");
	s.msgs_out = (unsigned)hist_num(rec, "messages_out");
	s.msgs_in = (unsigned)hist_num(rec, "messages_in");
	snprintf(s.entry, sizeof(s.entry), "%s", hist_str(rec, "entry", ""));
	h->bytes_out += s.bytes_out;
	h->bytes_in += s.bytes_in;
	h->ok += s.ok;
	h->missed += !s.ok;
	h->ses = xrealloc(h->ses, (h->n_ses + 1) * sizeof(*h->ses));
	h->ses[h->n_ses++] = s;
}

static int hist_by_count(const void *a, const void *b)
{
	const struct hist_cause *x = a, *y = b;

	return x->n != y->n ? (x->n < y->n ? 1 : -1) : strcmp(x->name, y->name);
}

void history_load(struct history *h, const char *dir, time_t from, time_t to)
{
	long long off;

	memset(h, 0, sizeof(*h));
	h->from = from;
	h->to = to;
	/* a session that ends in the period may have started a day before it */
	off = ledger_offset_before(dir, from - 86400);
	ledger_read(dir, &off, hist_on_record, h);
	qsort(h->cause, h->n_causes, sizeof(h->cause[0]), hist_by_count);
	h->n_samples = samples_read(dir, from, to, &h->samples);
}

void history_free(struct history *h)
{
	free(h->att);
	free(h->ses);
	free(h->samples);
	memset(h, 0, sizeof(*h));
}

int history_colour(const struct history *h, const char *cause)
{
	if (strcmp(cause, "connected") == 0)
		return 0;
	for (size_t i = 0; i < h->n_causes; i++)
		if (strcmp(h->cause[i].name, cause) == 0)
			return (int)i + 1;
	return (int)h->n_causes; /* folded into "other" */
}
