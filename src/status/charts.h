/* The pictures of the status page and the report, as inline SVG drawn on
 * the server: no script, no font or file from elsewhere. Marks carry
 * data-* attributes naming what they show (a test reads them). */
#ifndef STATUS_CHARTS_H
#define STATUS_CHARTS_H
#include <time.h>

#include "lib/buf.h"

struct history;

/* Appends s to out with & < > " escaped (text and attribute values). */
void chart_escape(struct buf *out, const char *s);
/* Each dial attempt a mark coloured by its cause (a rect of class kN with
 * data-cause, in g.marks), each connected period a bar (in g.up) with its
 * bytes. */
void chart_timeline(struct buf *out, const struct history *h);
/* Queue size over the period from the samples, then now_count at now
 * (the last point: circle class "last", data-count). */
void chart_queue(struct buf *out, const struct history *h, time_t now, unsigned now_count);
/* Failed attempts by cause: one bar each (g class "bar", data-cause,
 * data-count), most frequent first. */
void chart_failures(struct buf *out, const struct history *h);
/* The colour of cause index k (history_colour), as CSS. */
const char *chart_colour(int k);

#endif
