/* Queue size over time: a ring of samples in DIR/queue.samples that
 * the daemon appends to every queue_sample_interval, so the status page's
 * history survives restarts. Invariant: the file never grows beyond its
 * header and SAMPLES_MAX records; the oldest sample is overwritten. */
#ifndef STATUS_SAMPLES_H
#define STATUS_SAMPLES_H
#include <stddef.h>
#include <time.h>

#define SAMPLES_MAX 10080 /* a week at one a minute */

struct sample {
	time_t at;
	unsigned messages; /* in the queue */
	unsigned for_link; /* of those, waiting for a dial-up link */
};

/* Appends one sample; -1 (errno) if the file cannot be written. */
int samples_append(const char *dir, const struct sample *s);
/* The samples from..to, oldest first, into *out (malloc'd; caller frees);
 * returns how many (0 when there is no file). */
size_t samples_read(const char *dir, time_t from, time_t to, struct sample **out);

#endif
