/* Hayes AT dialog over a port (port.h: a serial tty, or any other back-end).
 * Replies are read as lines (CR or LF ended); echo, blank lines, RING and
 * informational lines are skipped; the first final result code ends a
 * command. Invariant: a command never waits
 * longer than its timeout, and noise is reported as garbage, not as silence. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "link/modem.h"

#define MODEM_NOISE_MAX	  16 /* non-printable bytes that make a reply garbage at once */
#define MODEM_UNKNOWN_MAX 6  /* unknown lines to an AT command that do the same */

/* What came back for one command. */
struct reply {
	enum cause_id id;
	int connect;
	char line[128]; /* the final result line */
	int noise;	/* non-printable bytes seen */
	int unknown;	/* printable lines that are no result code */
	char seen[48];	/* the first bytes of noise or unknown text, escaped */
};

static void reply_seen(struct reply *r, const char *data, size_t len)
{
	size_t used = strlen(r->seen);

	for (size_t i = 0; i < len && used + 5 < sizeof(r->seen); i++) {
		unsigned char ch = (unsigned char)data[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			r->seen[used++] = (char)ch;
		else
			used +=
			    (size_t)snprintf(r->seen + used, sizeof(r->seen) - used, "\\x%02x", ch);
		r->seen[used] = '\0';
	}
}

/* Handles one complete line; returns 1 when it is a final result code. */
static int reply_line(struct reply *r, const char *cmd, const char *line, size_t len, int dialing)
{
	char text[128];
	int printable = 1;

	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
			printable = 0;
	if (!printable) {
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
				r->noise++;
		reply_seen(r, line, len);
		return 0;
	}
	snprintf(text, sizeof(text), "%.*s", (int)(len < 127 ? len : 127), line);
	if (strcasecmp(text, cmd) == 0 || strcasecmp(text, "RING") == 0 || strcmp(text, "2") == 0)
		return 0;
	if (cause_modem_result(text, &r->id, &r->connect)) {
		snprintf(r->line, sizeof(r->line), "%s", text);
		return 1;
	}
	if (!dialing) {
		r->unknown++;
		reply_seen(r, text, strlen(text));
		reply_seen(r, " ", 1);
	}
	return 0;
}

/* After a verbose result ended by CR, its LF: read it so the data phase
 * starts with the far end's first byte. Numeric results (ATV0) end with CR
 * alone. A byte that is not LF is data and cannot be given back: logged. */
static void modem_eat_lf(struct modem *m, const struct reply *r)
{
	struct cause c;
	char ch;

	if (isdigit((unsigned char)r->line[0]))
		return;
	if (port_read(&m->port, &ch, 1, 200, &c) == 1 && ch != '\n')
		log_warn("modem: byte 0x%02x after '%s' is not LF: lost", (unsigned char)ch,
			 r->line);
}

/* Sends cmd and reads the reply. 0 with r filled when a final result came;
 * -1 with c set on silence (on_silence), garbage, or a failed device. */
static int modem_command(struct modem *m, const char *cmd, int timeout_ms, int dialing,
			 enum cause_id on_silence, struct reply *r, struct cause *c)
{
	char line[256], data[256];
	size_t used = 0;
	long long deadline;
	char *out = NULL;

	memset(r, 0, sizeof(*r));
	port_drain(&m->port);
	if (asprintf(&out, "%s\r", cmd) < 0)
		return -1;
	if (port_write(&m->port, out, strlen(out), timeout_ms, c) < 0) {
		free(out);
		return -1;
	}
	free(out);
	deadline = clock_mono_ms() + timeout_ms;
	while (clock_mono_ms() < deadline) {
		/* Dialing: one byte at a time, so the far end's first bytes (an
		 * SMTP greeting on a fast line) are left for the data phase. */
		ssize_t n = port_read(&m->port, data, dialing ? 1 : sizeof(data),
				      (int)(deadline - clock_mono_ms()), c);
		if (n < 0)
			return -1;
		for (ssize_t i = 0; i < n; i++) {
			if (data[i] == '\r' || data[i] == '\n') {
				if (reply_line(r, cmd, line, used, dialing)) {
					if (dialing && data[i] == '\r')
						modem_eat_lf(m, r);
					return 0;
				}
				used = 0;
			} else if (used < sizeof(line))
				line[used++] = data[i];
		}
		if (r->noise >= MODEM_NOISE_MAX || r->unknown >= MODEM_UNKNOWN_MAX ||
		    (used == sizeof(line)))
			break;
	}
	if (used > 0 && reply_line(r, cmd, line, used, dialing))
		return 0; /* a result without its line end */
	if (r->noise || r->unknown) {
		cause_set(c, CAUSE_GARBAGE, NULL);
		snprintf(c->words, sizeof(c->words), "reply to %.60s: '%s'", cmd, r->seen);
		return -1;
	}
	cause_set(c, on_silence, NULL);
	snprintf(c->words, sizeof(c->words), "no reply to %.80s within %d ms", cmd, timeout_ms);
	return -1;
}

int modem_open(struct modem *m, const struct phonebook_entry *e, const char *lock_dir,
	       struct cause *c)
{
	struct port_spec spec = {e->device, e->speed, e->hwflow, lock_dir};

	memset(m, 0, sizeof(*m));
	m->entry = e;
	return port_open(&m->port, &spec, c);
}

int modem_init(struct modem *m, struct cause *c)
{
	const struct strlist *init = &m->entry->init;
	struct reply r;

	for (size_t i = 0; i < (init->n ? init->n : 1); i++) {
		const char *cmd = init->n ? init->v[i] : "AT";
		if (modem_command(m, cmd, m->entry->at_timeout_ms, 0, CAUSE_NO_RESPONSE, &r, c) < 0)
			return -1;
		if (r.id != CAUSE_OK || r.connect) {
			cause_set(c, r.id == CAUSE_DIAL_ERROR ? CAUSE_INIT_ERROR : CAUSE_GARBAGE,
				  NULL);
			snprintf(c->words, sizeof(c->words), "%.60s in reply to %.50s", r.line,
				 cmd);
			return -1;
		}
	}
	return 0;
}

/* The dial string without blanks: "ATDT" + "0 555 1234" -> "ATDT05551234". */
static void modem_dial_string(const struct modem *m, const char *number, char *out, size_t len)
{
	size_t used = (size_t)snprintf(out, len, "%s", m->entry->dial_prefix);

	for (; *number && used + 1 < len; number++)
		if (*number != ' ')
			out[used++] = *number;
	out[used < len ? used : len - 1] = '\0';
}

/* The line speed a CONNECT line gives ("33600/ARQ"): 0 (unknown) when it
 * gives none, or a number beyond an int that the line's noise made. */
static int modem_speed(const char *s)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*s))
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno == ERANGE || v > INT_MAX ? 0 : (int)v;
}

/* A final result r for cmd that should be CONNECT: 0 with m->connect and
 * m->speed set, else -1 with the modem's words in c. */
static int modem_connected(struct modem *m, const char *cmd, const struct reply *r, struct cause *c)
{
	const char *sp;

	if (!r->connect) {
		cause_set(c, r->id == CAUSE_OK ? CAUSE_GARBAGE : r->id, r->line);
		if (r->id == CAUSE_OK)
			snprintf(c->words, sizeof(c->words), "OK in reply to %.90s", cmd);
		return -1;
	}
	snprintf(m->connect, sizeof(m->connect), "%.63s", r->line);
	sp = strchr(r->line, ' ');
	if (sp)
		m->speed = modem_speed(sp + 1);
	return 0;
}

int modem_dial(struct modem *m, const char *number, struct cause *c)
{
	char cmd[96];
	struct reply r;

	m->connect[0] = '\0';
	m->speed = 0;
	modem_dial_string(m, number, cmd, sizeof(cmd));
	if (modem_command(m, cmd, m->entry->dial_timeout_ms, 1, CAUSE_DIAL_TIMEOUT, &r, c) < 0) {
		if (c->id == CAUSE_DIAL_TIMEOUT) /* any character aborts the dial */
			port_write(&m->port, "\r", 1, 1000, &(struct cause){0});
		return -1;
	}
	return modem_connected(m, cmd, &r, c);
}

int modem_wait_ring(struct modem *m, int timeout_ms, struct cause *c)
{
	long long deadline = clock_mono_ms() + timeout_ms;
	char ch;

	/* One byte at a time (RINGs are a few bytes every few seconds), so
	 * nothing after a RING is consumed before the next call. */
	while (clock_mono_ms() < deadline) {
		ssize_t n = port_read(&m->port, &ch, 1, (int)(deadline - clock_mono_ms()), c);
		if (n < 0)
			return -1;
		if (n == 0)
			continue;
		if (ch != '\r' && ch != '\n') {
			if (m->rlen < sizeof(m->rline) - 1)
				m->rline[m->rlen++] = ch;
			continue;
		}
		m->rline[m->rlen] = '\0';
		m->rlen = 0;
		if (strcasecmp(m->rline, "RING") == 0 || strcmp(m->rline, "2") == 0)
			return 1;
	}
	return 0;
}

int modem_answer(struct modem *m, struct cause *c)
{
	struct reply r;

	m->connect[0] = '\0';
	m->speed = 0;
	m->rlen = 0;
	if (modem_command(m, "ATA", m->entry->answer_timeout_ms, 1, CAUSE_DIAL_TIMEOUT, &r, c) <
	    0) {
		if (c->id == CAUSE_DIAL_TIMEOUT) /* any character aborts the answer */
			port_write(&m->port, "\r", 1, 1000, &(struct cause){0});
		return -1;
	}
	return modem_connected(m, "ATA", &r, c);
}

int modem_hangup(struct modem *m, int hold_ms, struct cause *c)
{
	m->connect[0] = '\0';
	m->speed = 0;
	return port_hangup(&m->port, hold_ms, c);
}

int modem_recover(struct modem *m, int hold_ms, struct cause *c)
{
	struct reply r;

	if (modem_hangup(m, hold_ms, c) < 0)
		return -1;
	/* ATZ first, whatever init says: after a DTR drop it is the reset a
	 * wedged modem waits for. */
	if (modem_command(m, "ATZ", m->entry->at_timeout_ms, 0, CAUSE_NO_RESPONSE, &r, c) < 0)
		return -1;
	return modem_init(m, c);
}

int modem_carrier(struct modem *m, struct cause *c)
{
	char data[256];
	ssize_t n;

	if (m->port.fd < 0) {
		cause_set(c, CAUSE_DEVICE_GONE, "the device is closed");
		return -1;
	}
	n = port_read(&m->port, data, sizeof(data) - 1, 0, c);
	if (n == 0)
		return 0;
	if (n < 0) {
		if (c->id == CAUSE_DEVICE_GONE)
			c->id = CAUSE_CARRIER_LOST;
		return -1;
	}
	data[n] = '\0';
	if (strstr(data, "NO CARRIER")) {
		cause_set(c, CAUSE_CARRIER_LOST, "NO CARRIER");
		return -1;
	}
	return 0;
}

void modem_close(struct modem *m)
{
	port_close(&m->port);
	m->connect[0] = '\0';
}
