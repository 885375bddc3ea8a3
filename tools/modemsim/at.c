/* modemsim: the AT command interpreter and result codes.
 * Every command line gets exactly one final result (or none while silent,
 * wedged or dialing); the transcript records each line with that result. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "modemsim.h"

static const char *const at_names[] = {
    "OK", "CONNECT", "RING", "NO CARRIER", "ERROR", NULL, "NO DIALTONE", "BUSY", "NO ANSWER",
};

#define AT_PENDING (-1) /* the command started a dial: the result comes later */

const char *at_code_name(int code)
{
	if (code < 0 || code > RC_NO_ANSWER || !at_names[code])
		return "?";
	return at_names[code];
}

/* One entry of --script / --fail-results, case-insensitive. */
int at_parse_outcome(const char *text, struct ms_outcome *oc)
{
	char t[64];
	size_t n = 0;
	char *end;

	while (isspace((unsigned char)*text))
		text++;
	for (; *text && n + 1 < sizeof(t); text++)
		t[n++] = (char)toupper((unsigned char)*text);
	while (n > 0 && isspace((unsigned char)t[n - 1]))
		n--;
	t[n] = '\0';
	memset(oc, 0, sizeof(*oc));
	oc->drop = -1;
	if (strcmp(t, "WEDGE") == 0 || strcmp(t, "SILENT") == 0 || strcmp(t, "GARBAGE") == 0) {
		oc->kind = t[0] == 'W' ? OC_WEDGE : t[0] == 'S' ? OC_SILENT : OC_GARBAGE;
		return 0;
	}
	if (strncmp(t, "DROP:", 5) == 0) {
		oc->kind = OC_CONNECT;
		oc->drop = strtoll(t + 5, &end, 10);
		return (end == t + 5 || *end || oc->drop < 0) ? -1 : 0;
	}
	if (strncmp(t, "CONNECT", 7) == 0) {
		oc->kind = OC_CONNECT;
		if (t[7] == '\0')
			return 0;
		oc->speed = strtol(t + 7, &end, 10);
		return (t[7] != ' ' || *end || oc->speed < 10) ? -1 : 0;
	}
	for (int c = RC_NO_CARRIER; c <= RC_NO_ANSWER; c++) {
		if (at_names[c] && strcmp(t, at_names[c]) == 0) {
			oc->kind = OC_RESULT;
			oc->code = c;
			return 0;
		}
	}
	return -1;
}

/* ATZ: the stored profile (which is the factory profile: AT&W is a no-op). */
void at_reset(struct modem *m)
{
	static const struct {
		int reg, val;
	} defaults[] = {{2, 43}, {3, 13}, {4, 10},  {5, 8},   {6, 2},	{7, 50},
			{8, 2},	 {9, 6},  {10, 14}, {11, 95}, {12, 50}, {25, 5}};

	m->echo = true;
	m->verbose = true;
	m->quiet = false;
	m->xlevel = 4;
	memset(m->s, 0, sizeof(m->s));
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		m->s[defaults[i].reg] = defaults[i].val;
}

/* Noise instead of a result: high-bit bytes that never spell a result code. */
void at_garbage(struct modem *m)
{
	char noise[48];
	size_t n = 8 + ms_rand(&m->noise_rng) % 32;

	for (size_t i = 0; i < n; i++)
		noise[i] = (char)(0x80 | (ms_rand(&m->noise_rng) & 0x7f));
	noise[n++] = '\r';
	noise[n++] = '\n';
	ms_send(m, noise, n);
}

/* ATX: which result codes the modem may report (Hayes X0-X4). */
static int at_xmap(int xlevel, int code)
{
	if (code == RC_BUSY && xlevel < 3)
		return RC_NO_CARRIER;
	if (code == RC_NO_DIALTONE && (xlevel < 2 || xlevel == 3))
		return RC_NO_CARRIER;
	return code;
}

/* Sends a final result as ATV/ATQ/ATX say; returns the words for the transcript. */
const char *at_result(struct modem *m, int code, long speed)
{
	static char text[64];
	char wire[80];
	int n;

	code = at_xmap(m->xlevel, code);
	if (code == RC_CONNECT && m->xlevel > 0 && speed > 0)
		snprintf(text, sizeof(text), "CONNECT %ld", speed);
	else
		snprintf(text, sizeof(text), "%s", at_code_name(code));
	if (m->o.garbage) {
		at_garbage(m);
		return "GARBAGE";
	}
	if (m->o.silent || m->quiet)
		return text;
	if (m->verbose)
		n = snprintf(wire, sizeof(wire), "%c%c%s%c%c", m->s[3], m->s[4], text, m->s[3],
			     m->s[4]);
	else
		n = snprintf(wire, sizeof(wire), "%d%c", code, m->s[3]);
	ms_send(m, wire, (size_t)n);
	return text;
}

/* Information text (ATI, ATS?, AT&V), framed as the current ATV asks. */
static void at_info(struct modem *m, const char *text)
{
	char wire[256];
	int n;

	if (m->o.silent || m->quiet)
		return;
	if (m->verbose)
		n = snprintf(wire, sizeof(wire), "%c%c%s%c%c", m->s[3], m->s[4], text, m->s[3],
			     m->s[4]);
	else
		n = snprintf(wire, sizeof(wire), "%s%c%c", text, m->s[3], m->s[4]);
	ms_send(m, wire, (size_t)n < sizeof(wire) ? (size_t)n : sizeof(wire) - 1);
}

static void at_ati(struct modem *m, int n)
{
	static const char *const texts[] = {
	    "33600",
	    "255",
	    "ROM test passed",
	    "modemsim 1.0 Hayes-compatible modem emulator",
	    "modemsim: pseudo-terminal modem, no hardware",
	    "000",
	    "data pump: software emulation",
	    "dialmail",
	    "",
	    "",
	};
	char text[128];

	if (n == 4)
		snprintf(text, sizeof(text), "E%d Q%d V%d X%d S0=%03d S7=%03d S12=%03d", m->echo,
			 m->quiet, m->verbose, m->xlevel, m->s[0], m->s[7], m->s[12]);
	else
		snprintf(text, sizeof(text), "%s", texts[n]);
	if (text[0])
		at_info(m, text);
}

/* Digits after a command letter; dflt when there are none. */
static int at_num(const char **s, int dflt)
{
	int v = 0, digits = 0;

	while (isdigit((unsigned char)**s)) {
		if (v < 100000)
			v = v * 10 + (**s - '0');
		(*s)++;
		digits++;
	}
	return digits ? v : dflt;
}

/* ATD: checks the dial string; the call itself is call.c's business. */
static int at_dial(struct modem *m, const char *s)
{
	static const char allowed[] = "0123456789*#ABCDabcdTtPpWw,@! -().+";
	char number[64];
	size_t n = 0;

	if (m->state != ST_COMMAND)
		return RC_ERROR;
	for (; *s; s++) {
		if (!strchr(allowed, *s))
			return RC_ERROR;
		if ((isdigit((unsigned char)*s) || strchr("*#+ABCDabcd", *s)) &&
		    n + 1 < sizeof(number))
			number[n++] = *s;
	}
	number[n] = '\0';
	if (n == 0)
		return RC_ERROR;
	call_dial(m, number);
	return AT_PENDING;
}

static int at_sreg(struct modem *m, const char **s)
{
	int reg = at_num(s, -1), val;
	char text[8];

	if (reg < 0 || reg >= MS_NREG)
		return RC_ERROR;
	if (**s == '?') {
		(*s)++;
		snprintf(text, sizeof(text), "%03d", m->s[reg]);
		at_info(m, text);
		return RC_OK;
	}
	if (**s != '=')
		return RC_OK;
	(*s)++;
	val = at_num(s, 0);
	if (val > 255)
		return RC_ERROR;
	m->s[reg] = val;
	return RC_OK;
}

static int at_amp(struct modem *m, const char **s)
{
	char c = (char)toupper((unsigned char)*(*s)++);
	int n = at_num(s, 0);
	char text[96];

	switch (c) {
	case 'F':
		at_reset(m);
		return RC_OK;
	case 'V':
		snprintf(text, sizeof(text), "E%d Q%d V%d X%d S02=%03d S03=%03d S12=%03d", m->echo,
			 m->quiet, m->verbose, m->xlevel, m->s[2], m->s[3], m->s[12]);
		at_info(m, text);
		return RC_OK;
	case 'C':
	case 'D':
	case 'K':
	case 'W':
	case 'S':
	case 'Q':
	case 'Y':
		return n <= 9 ? RC_OK : RC_ERROR;
	}
	return RC_ERROR;
}

/* E, V, Q, X, L, M, H, Z, O, A, I with their numeric argument. */
static int at_letter(struct modem *m, char c, const char **s, bool *online)
{
	int n = at_num(s, 0);

	switch (c) {
	case 'E':
	case 'V':
	case 'Q':
		if (n > 1)
			return RC_ERROR;
		*(c == 'E' ? &m->echo : c == 'V' ? &m->verbose : &m->quiet) = n;
		return RC_OK;
	case 'X':
		if (n > 4)
			return RC_ERROR;
		m->xlevel = n;
		return RC_OK;
	case 'L':
	case 'M':
		return n <= 3 ? RC_OK : RC_ERROR;
	case 'H':
		if (n > 1)
			return RC_ERROR;
		if (n == 0 && m->state == ST_ONLINE_CMD)
			call_hangup(m, "ath");
		return RC_OK;
	case 'Z':
		if (m->state == ST_ONLINE_CMD)
			call_hangup(m, "atz");
		at_reset(m);
		return RC_OK;
	case 'O':
		if (m->state != ST_ONLINE_CMD)
			return RC_NO_CARRIER;
		*online = true;
		return RC_CONNECT;
	case 'A':
		if (answer_pickup(m) < 0)
			return RC_NO_CARRIER; /* nobody is calling us */
		*online = true;
		return RC_CONNECT;
	case 'I':
		if (n > 9)
			return RC_ERROR;
		at_ati(m, n);
		return RC_OK;
	}
	return RC_ERROR;
}

/* Runs the commands after "AT"; returns the final result or AT_PENDING. */
static int at_exec(struct modem *m, const char *s, bool *online)
{
	int rc = RC_OK;

	while (rc == RC_OK) {
		char c;

		while (*s == ' ')
			s++;
		if (!*s)
			break;
		c = (char)toupper((unsigned char)*s++);
		if (c == 'D')
			return at_dial(m, s);
		else if (c == 'S')
			rc = at_sreg(m, &s);
		else if (c == '&')
			rc = at_amp(m, &s);
		else
			rc = at_letter(m, c, &s, online);
	}
	return rc;
}

/* Where "AT" starts in the line (modems hunt for it), or NULL. */
static const char *at_find(const char *line)
{
	for (const char *p = line; p[0] && p[1]; p++) {
		if (toupper((unsigned char)p[0]) == 'A' && toupper((unsigned char)p[1]) == 'T')
			return p;
	}
	return NULL;
}

/* A wedged modem waiting for ATZ: only a line whose first command is Z counts. */
static bool at_wants_atz(const char *at)
{
	at += 2;
	while (*at == ' ')
		at++;
	return toupper((unsigned char)*at) == 'Z';
}

void at_attempt_over(struct modem *m)
{
	if (m->o.wedge_after > 0 && m->since_recover >= m->o.wedge_after &&
	    m->wedge == WEDGE_NONE) {
		m->wedge = WEDGE_DEAD;
		ms_log(m,
		       "wedge: no answer to anything after %ld dial attempts "
		       "(until DTR drop, then ATZ)",
		       m->since_recover);
	}
}

static void at_line(struct modem *m)
{
	char q[4 * MS_MAXLINE + 8];
	const char *at, *res;
	bool online = false;
	int rc;

	m->line[m->linelen] = '\0';
	ms_quote(m->line, m->linelen, q, sizeof(q));
	m->linelen = 0;
	if (!q[0] && !m->overflow)
		return;
	at = at_find(m->line);
	if (m->o.silent || m->wedge == WEDGE_DEAD) {
		ms_log(m, "cmd %s -> (%s)", q, m->o.silent ? "silent" : "wedged, no answer");
		return;
	}
	if (!at) {
		ms_log(m, "cmd %s -> (ignored: no AT)", q);
		return;
	}
	if (m->wedge == WEDGE_WANT_ATZ) {
		if (!at_wants_atz(at)) {
			ms_log(m, "cmd %s -> (wedged, waiting for ATZ)", q);
			return;
		}
		m->wedge = WEDGE_NONE;
		m->since_recover = 0;
		ms_log(m, "wedge: cleared by ATZ");
	}
	if (m->o.garbage) {
		at_garbage(m);
		ms_log(m, "cmd %s -> GARBAGE", q);
		return;
	}
	snprintf(m->last, sizeof(m->last), "%s", m->line);
	rc = m->overflow ? RC_ERROR : at_exec(m, at + 2, &online);
	m->overflow = false;
	if (rc == AT_PENDING) {
		ms_log(m, "cmd %s -> (dialing)", q);
		return;
	}
	res = at_result(m, rc, m->call.speed);
	ms_log(m, "cmd %s -> %s", q, res);
	if (online)
		call_online(m);
}

/* One typed character in command mode. */
static void at_char(struct modem *m, char c)
{
	bool mute = m->o.silent || m->o.garbage || m->wedge != WEDGE_NONE;

	if (m->echo && !mute)
		ms_send(m, &c, 1);
	if (c == (char)m->s[3]) {
		at_line(m);
	} else if (c == (char)m->s[5] || c == 0x7f) {
		if (m->linelen)
			m->linelen--;
	} else if (c == '\n' || c == '\0') {
		/* LF after CR and NULs are not part of a command */
	} else if (c == '/' && m->linelen == 1 && toupper((unsigned char)m->line[0]) == 'A') {
		m->linelen = strlen(m->last); /* A/ repeats the last command line */
		memcpy(m->line, m->last, m->linelen);
		at_line(m);
	} else if (m->linelen < MS_MAXLINE) {
		m->line[m->linelen++] = c;
	} else {
		m->overflow = true;
	}
}

/* Bytes from the dialer while no call is online (command mode or dialing). */
void at_input(struct modem *m, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (m->state == ST_ONLINE) { /* ATO earlier in this chunk */
			call_pty_data(m, data + i, len - i);
			return;
		}
		if (m->state == ST_DIALING) {
			if (data[i] != '\n' && data[i] != '\0')
				call_abort(m, "key");
			continue;
		}
		at_char(m, data[i]);
		if (m->state == ST_DIALING)
			return; /* the rest of the chunk was typed with the dial */
	}
}
