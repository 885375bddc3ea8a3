/* The ring file of queue samples (samples.h). Layout, little-endian as the
 * machine writes it: a 16-byte header ("DMQS" magic, version 1, capacity,
 * next slot), then capacity records of 16 bytes (int64 time, uint32
 * messages, uint32 for_link); a record with time 0 is empty. Not synced:
 * a lost sample costs a dot in a picture, never mail. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "status/samples.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

struct samples_header {
	char magic[4];
	uint32_t version, capacity, next;
};

struct samples_rec {
	int64_t at;
	uint32_t messages, for_link;
};

static int samples_open(const char *dir, int flags)
{
	char *path = xasprintf("%s/queue.samples", dir);
	int fd = open(path, flags | O_CLOEXEC, 0640);

	free(path);
	return fd;
}

/* The header of fd, or a new one for an empty or foreign file. */
static void samples_header(int fd, struct samples_header *h)
{
	if (pread(fd, h, sizeof(*h), 0) == (ssize_t)sizeof(*h) &&
	    memcmp(h->magic, "DMQS", 4) == 0 && h->version == 1 && h->capacity == SAMPLES_MAX &&
	    h->next < SAMPLES_MAX)
		return;
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, "DMQS", 4);
	h->version = 1;
	h->capacity = SAMPLES_MAX;
	if (ftruncate(fd, 0) < 0) /* a foreign or damaged file: start afresh */
		log_warn("samples: cannot empty queue.samples");
}

int samples_append(const char *dir, const struct sample *s)
{
	struct samples_header h;
	struct samples_rec r = {(int64_t)s->at, s->messages, s->for_link};
	int fd = samples_open(dir, O_RDWR | O_CREAT), rc = -1;

	if (fd < 0)
		return -1;
	samples_header(fd, &h);
	if (pwrite(fd, &r, sizeof(r), (off_t)(sizeof(h) + (size_t)h.next * sizeof(r))) ==
	    (ssize_t)sizeof(r)) {
		h.next = (h.next + 1) % h.capacity;
		rc = pwrite(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) ? 0 : -1;
	}
	close(fd);
	return rc;
}

size_t samples_read(const char *dir, time_t from, time_t to, struct sample **out)
{
	struct samples_header h;
	struct samples_rec *v = xcalloc(SAMPLES_MAX, sizeof(*v));
	int fd = samples_open(dir, O_RDONLY);
	size_t n = 0;
	ssize_t got = -1;

	*out = xcalloc(SAMPLES_MAX, sizeof(**out));
	if (fd >= 0 && pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    memcmp(h.magic, "DMQS", 4) == 0 && h.capacity == SAMPLES_MAX && h.next < SAMPLES_MAX)
		got = pread(fd, v, SAMPLES_MAX * sizeof(*v), sizeof(h));
	for (size_t k = 0; got > 0 && k < SAMPLES_MAX; k++) {
		const struct samples_rec *r = &v[(h.next + k) % SAMPLES_MAX];
		if ((size_t)got < ((h.next + k) % SAMPLES_MAX + 1) * sizeof(*r) || r->at == 0 ||
		    r->at < from || r->at > to)
			continue;
		(*out)[n++] = (struct sample){(time_t)r->at, r->messages, r->for_link};
	}
	if (fd >= 0)
		close(fd);
	free(v);
	return n;
}
