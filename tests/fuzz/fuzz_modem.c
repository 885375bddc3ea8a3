/* Fuzzes the modem's AT dialogue: the input is what the modem says, served
 * by a port back-end of this harness (link/port.h) in reads whose size the
 * first byte picks, to the commands of one whole call: the init strings,
 * ATD, waiting for RING, ATA and the carrier check. Covers the line reader
 * (CR/LF, echo, RING, noise), the classification of result lines
 * (cause_modem_result, numeric ATV0 codes, CONNECT speeds) and the causes
 * built from the modem's words. Checks that a call that came up has its
 * result line and a speed that is not negative (0: unknown). */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lib/buf.h"
#include "link/cause.h"
#include "link/modem.h"
#include "link/phonebook.h"

static const uint8_t *in;
static size_t in_len, chunk;

static ssize_t fz_read(struct port *p, void *data, size_t len, int timeout_ms, struct cause *c)
{
	size_t n = len < chunk ? len : chunk;

	if (in_len == 0) { /* the modem went away: no waiting for timeouts */
		cause_set(c, CAUSE_DEVICE_GONE, "end of input");
		return -1;
	}
	n = n < in_len ? n : in_len;
	memcpy(data, in, n);
	in += n;
	in_len -= n;
	return (ssize_t)n;
}

static int fz_write(struct port *p, const void *data, size_t len, int timeout_ms, struct cause *c)
{
	return 0;
}

static void fz_drain(struct port *p)
{
}

static int fz_hangup(struct port *p, int hold_ms, struct cause *c)
{
	return 0;
}

static void fz_close(struct port *p)
{
	p->ops = NULL;
	p->fd = -1;
}

static const struct port_ops fz_ops = {"fuzz",	 "fuzz:",  NULL,      fz_read,
				       fz_write, fz_drain, fz_hangup, fz_close};

static struct phonebook_entry entry;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	entry.name = "isp";
	entry.device = "fuzz:modem";
	strlist_add(&entry.init, "ATZ");
	strlist_add(&entry.init, "AT&F E0 V1");
	entry.dial_prefix = "ATDT";
	entry.dial_timeout_ms = 60000;
	entry.at_timeout_ms = 3000;
	entry.answer_timeout_ms = 60000;
	entry.rings = 1;
	return 0;
}

/* A call that came up: its result line is kept, and the speed is what
 * CONNECT said, or 0 (unknown); never negative. */
static void check_connected(const struct modem *m)
{
	if (m->speed < 0 || m->connect[0] == '\0')
		abort();
}

/* One line classified on its own, as the engine's callers see it. */
static void classify(const uint8_t *data, size_t size)
{
	char line[256];
	enum cause_id id = CAUSE_OK;
	int connect;
	struct cause c;
	struct buf out = BUF_INIT;

	if (size >= sizeof(line))
		size = sizeof(line) - 1;
	memcpy(line, data, size);
	line[size] = '\0';
	if (cause_modem_result(line, &id, &connect) == 1 && (id >= CAUSE_COUNT || id < 0))
		abort();
	cause_set(&c, id, line);
	cause_describe(&c, &out);
	cause_class_name(cause_class(id));
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct modem m;
	struct cause c;

	if (size == 0)
		return 0;
	chunk = 1 + data[0] % 64;
	classify(data + 1, size - 1);
	memset(&m, 0, sizeof(m));
	m.entry = &entry;
	m.port.ops = &fz_ops;
	m.port.fd = 0; /* never used by fz_ops; not -1: the port is open */
	in = data + 1;
	in_len = size - 1;
	if (modem_init(&m, &c) == 0 && modem_dial(&m, "0 555 1234", &c) == 0) {
		check_connected(&m);
		modem_carrier(&m, &c);
	}
	if (modem_wait_ring(&m, 60000, &c) == 1 && modem_answer(&m, &c) == 0) {
		check_connected(&m);
		modem_carrier(&m, &c);
	}
	modem_recover(&m, 0, &c);
	return 0;
}
