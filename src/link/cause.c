/* Cause table of the link layer: stable names, classes and texts for every
 * way a dial attempt can end, and the decoders of modem result codes and
 * pppd exit statuses. Invariant: every cause_id has a row, texts are words. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "link/cause.h"

struct cause_def {
	const char *name;
	enum cause_class cls;
	const char *text;
};

static const struct cause_def cause_defs[CAUSE_COUNT] = {
    [CAUSE_OK] = {"ok", CC_NONE, "success"},
    [CAUSE_BUSY] = {"busy", CC_TRANSIENT, "the number is busy"},
    [CAUSE_NO_ANSWER] = {"no-answer", CC_TRANSIENT, "the remote end did not answer"},
    [CAUSE_NO_CARRIER] = {"no-carrier", CC_TRANSIENT,
			  "no carrier: the call did not connect or was dropped"},
    [CAUSE_NO_DIALTONE] = {"no-dialtone", CC_MODEM,
			   "no dial tone: the phone line is dead or not plugged in"},
    [CAUSE_VOICE] = {"voice", CC_TRANSIENT, "a voice answered instead of a modem"},
    [CAUSE_DELAYED] = {"delayed", CC_TRANSIENT,
		       "the modem delays redialling this number (national redial rules)"},
    [CAUSE_BLACKLISTED] = {"blacklisted", CC_CONFIG,
			   "the modem refuses this number after too many failed calls"},
    [CAUSE_DIAL_ERROR] = {"dial-error", CC_MODEM, "the modem answered ERROR to the dial command"},
    [CAUSE_DIAL_TIMEOUT] = {"dial-timeout", CC_TRANSIENT,
			    "no result from the modem within dial_timeout"},
    [CAUSE_INIT_ERROR] = {"init-error", CC_MODEM, "the modem answered ERROR to an init string"},
    [CAUSE_NO_RESPONSE] = {"no-response", CC_MODEM, "the modem does not answer AT commands"},
    [CAUSE_GARBAGE] = {"garbage", CC_MODEM,
		       "the modem answered with something that is no result code"},
    [CAUSE_DEVICE_MISSING] = {"device-missing", CC_CONFIG, "the modem device does not exist"},
    [CAUSE_DEVICE_BUSY] = {"device-busy", CC_TRANSIENT,
			   "the modem device is in use by another program"},
    [CAUSE_DEVICE_ERROR] = {"device-error", CC_CONFIG,
			    "the modem device cannot be opened or set up"},
    [CAUSE_DEVICE_GONE] = {"device-gone", CC_MODEM,
			   "the modem device vanished or failed during the dialog"},
    [CAUSE_CARRIER_LOST] = {"carrier-lost", CC_TRANSIENT, "the carrier was lost after connecting"},
    [CAUSE_LINK_CHECK] = {"link-check-failed", CC_TRANSIENT,
			  "connected, but the mail server on the far side did not answer"},
    [CAUSE_PPP_FATAL] = {"ppp-fatal", CC_UNKNOWN,
			 "pppd hit a fatal error (a system call failed or memory ran out)"},
    [CAUSE_PPP_OPTIONS] = {"ppp-options", CC_CONFIG, "pppd refused its options"},
    [CAUSE_PPP_NOT_ROOT] = {"ppp-not-root", CC_CONFIG,
			    "pppd is not setuid-root and the user is not root"},
    [CAUSE_PPP_NO_KERNEL] = {"ppp-no-kernel", CC_CONFIG, "the kernel does not support PPP"},
    [CAUSE_PPP_SIGNAL] = {"ppp-killed", CC_TRANSIENT,
			  "pppd was stopped by a signal (SIGINT, SIGTERM or SIGHUP)"},
    [CAUSE_PPP_LOCK] = {"ppp-lock-failed", CC_MODEM, "pppd could not lock the serial port"},
    [CAUSE_PPP_OPEN] = {"ppp-open-failed", CC_MODEM, "pppd could not open the serial port"},
    [CAUSE_PPP_CONNECT] = {"ppp-connect-script-failed", CC_TRANSIENT,
			   "the pppd connect script failed"},
    [CAUSE_PPP_PTYCMD] = {"ppp-pty-command-failed", CC_CONFIG,
			  "the pppd pty command could not be run"},
    [CAUSE_PPP_NEGOTIATION] = {"ppp-negotiation-failed", CC_TRANSIENT,
			       "PPP negotiation failed: no network protocol came up"},
    [CAUSE_PPP_PEER_AUTH] = {"ppp-peer-auth-failed", CC_CONFIG,
			     "the peer failed or refused to authenticate itself"},
    [CAUSE_PPP_IDLE] = {"ppp-idle", CC_TRANSIENT, "pppd ended the link because it was idle"},
    [CAUSE_PPP_CONNECT_TIME] = {"ppp-connect-time", CC_TRANSIENT,
				"pppd ended the link at its connect time limit"},
    [CAUSE_PPP_CALLBACK] = {"ppp-callback", CC_TRANSIENT,
			    "callback negotiated; the peer will call back"},
    [CAUSE_PPP_PEER_DEAD] = {"ppp-peer-not-responding", CC_TRANSIENT,
			     "the peer is not responding to LCP echo requests"},
    [CAUSE_PPP_HANGUP] = {"ppp-modem-hangup", CC_TRANSIENT,
			  "the modem hung up during the PPP session"},
    [CAUSE_PPP_LOOPBACK] = {"ppp-loopback", CC_MODEM,
			    "serial loopback detected: the modem is not online"},
    [CAUSE_PPP_INIT] = {"ppp-init-script-failed", CC_MODEM, "the pppd init script failed"},
    [CAUSE_PPP_AUTH] = {"ppp-auth-failed", CC_CONFIG,
			"authentication failed: we failed to authenticate ourselves to the "
			"peer (check user name and password)"},
    [CAUSE_PPP_TRAFFIC] = {"ppp-traffic-limit", CC_TRANSIENT,
			   "pppd ended the link at its traffic limit"},
    [CAUSE_PPP_CNID] = {"ppp-caller-not-authorized", CC_CONFIG,
			"the calling number is not authorized"},
    [CAUSE_PPP_EXIT_OTHER] = {"ppp-exit-other", CC_UNKNOWN,
			      "pppd exited with a status that pppd does not document"},
    [CAUSE_PPP_NO_START] = {"ppp-not-started", CC_CONFIG, "pppd could not be started"},
    [CAUSE_PPP_UP_TIMEOUT] = {"ppp-up-timeout", CC_TRANSIENT,
			      "pppd did not bring the network up within up_timeout"},
    [CAUSE_CMD_EXIT] = {"command-failed", CC_UNKNOWN, "the link command failed"},
    [CAUSE_CMD_SIGNAL] = {"command-killed", CC_UNKNOWN, "the link command was killed"},
    [CAUSE_CMD_TIMEOUT] = {"command-timeout", CC_TRANSIENT,
			   "the link command did not finish within up_timeout"},
    [CAUSE_CMD_NOT_FOUND] = {"command-not-found", CC_CONFIG,
			     "the link command was not found or is not executable"},
    [CAUSE_CHECK_FAILED] = {"check-failed", CC_TRANSIENT,
			    "the link check did not pass within up_timeout"},
    [CAUSE_WINDOW_CLOSED] = {"window-closed", CC_TRANSIENT,
			     "the session window closed before the attempt"},
    [CAUSE_BAD_ENTRY] = {"bad-entry", CC_CONFIG,
			 "the phone book entry cannot be dialed as configured"},
};

enum cause_class cause_class(enum cause_id id)
{
	if ((int)id < 0 || id >= CAUSE_COUNT)
		return CC_UNKNOWN;
	return cause_defs[id].cls;
}

const char *cause_class_name(enum cause_class c)
{
	switch (c) {
	case CC_NONE:
		return "success";
	case CC_TRANSIENT:
		return "transient";
	case CC_MODEM:
		return "modem trouble";
	case CC_CONFIG:
		return "configuration or credentials";
	case CC_UNKNOWN:
		break;
	}
	return "unknown, treated as transient";
}

const char *cause_name(enum cause_id id)
{
	if ((int)id < 0 || id >= CAUSE_COUNT)
		return "unknown";
	return cause_defs[id].name;
}

const char *cause_text(enum cause_id id)
{
	if ((int)id < 0 || id >= CAUSE_COUNT)
		return "an unknown failure";
	return cause_defs[id].text;
}

void cause_set(struct cause *c, enum cause_id id, const char *words)
{
	c->id = id;
	c->code = 0;
	snprintf(c->words, sizeof(c->words), "%s", words ? words : "");
}

/* The pppd(8) exit status a cause stands for, or 0. */
static int cause_pppd_status(enum cause_id id)
{
	if (id >= CAUSE_PPP_FATAL && id <= CAUSE_PPP_CNID)
		return (int)(id - CAUSE_PPP_FATAL) + 1;
	return 0;
}

/* Causes whose words are the modem's own result ("BUSY"), which lead. */
static int cause_modem_words(enum cause_id id)
{
	return (id >= CAUSE_BUSY && id <= CAUSE_DIAL_ERROR) || id == CAUSE_INIT_ERROR ||
	       id == CAUSE_CARRIER_LOST;
}

void cause_describe(const struct cause *c, struct buf *out)
{
	const char *text = cause_text(c->id);

	if (cause_pppd_status(c->id) || c->id == CAUSE_PPP_EXIT_OTHER)
		buf_printf(out, "pppd exit status %d: %s", c->code, text);
	else if (c->id == CAUSE_CMD_EXIT)
		buf_printf(out, "%s (exit status %d)", text, c->code);
	else if (c->id == CAUSE_CMD_SIGNAL)
		buf_printf(out, "%s (signal %s)", text, strsignal(c->code));
	else if (c->words[0] && cause_modem_words(c->id))
		buf_printf(out, "%s (%s)", c->words, text);
	else if (c->words[0])
		buf_printf(out, "%s (%s)", text, c->words);
	else
		buf_puts(out, text);
	if (c->words[0] && (cause_pppd_status(c->id) || c->id == CAUSE_PPP_EXIT_OTHER ||
			    c->id == CAUSE_CMD_EXIT || c->id == CAUSE_CMD_SIGNAL))
		buf_printf(out, ": %s", c->words);
}

struct modem_word {
	const char *word; /* verbose form, matched as a prefix (case-insensitive) */
	int num;	  /* ATV0 numeric form, -1 if none */
	enum cause_id id;
	int connect;
};

/* Final result codes. CONNECT with any suffix ("CONNECT 33600/ARQ") is
 * final; numeric codes 10 and above are CONNECT at some speed (X4). */
static const struct modem_word modem_words[] = {
    {"OK", 0, CAUSE_OK, 0},
    {"CONNECT", 1, CAUSE_OK, 1},
    {"NO CARRIER", 3, CAUSE_NO_CARRIER, 0},
    {"ERROR", 4, CAUSE_DIAL_ERROR, 0},
    {"NO DIALTONE", 6, CAUSE_NO_DIALTONE, 0},
    {"NO DIAL TONE", -1, CAUSE_NO_DIALTONE, 0},
    {"BUSY", 7, CAUSE_BUSY, 0},
    {"NO ANSWER", 8, CAUSE_NO_ANSWER, 0},
    {"VOICE", -1, CAUSE_VOICE, 0},
    {"DELAYED", -1, CAUSE_DELAYED, 0},
    {"BLACKLISTED", -1, CAUSE_BLACKLISTED, 0},
};

static int cause_numeric(const char *line, int *out)
{
	char *end;
	long n;

	if (!isdigit((unsigned char)line[0]))
		return -1;
	n = strtol(line, &end, 10);
	if (*end != '\0' || n > 999)
		return -1;
	*out = (int)n;
	return 0;
}

int cause_modem_result(const char *line, enum cause_id *id, int *connect)
{
	size_t nw = sizeof(modem_words) / sizeof(modem_words[0]);
	int num;

	*connect = 0;
	if (cause_numeric(line, &num) == 0) {
		for (size_t i = 0; i < nw; i++)
			if (modem_words[i].num == num) {
				*id = modem_words[i].id;
				*connect = modem_words[i].connect;
				return 1;
			}
		if (num >= 5 && num != 6 && num != 7 && num != 8 && num != 2) {
			*id = CAUSE_OK; /* 5, 9, 10..: CONNECT at a speed */
			*connect = 1;
			return 1;
		}
		return 0;
	}
	for (size_t i = 0; i < nw; i++) {
		size_t len = strlen(modem_words[i].word);
		if (strncasecmp(line, modem_words[i].word, len) != 0)
			continue;
		/* "OK" must be the whole line; CONNECT may carry a speed. */
		if (line[len] != '\0' && !(modem_words[i].connect && line[len] == ' '))
			continue;
		*id = modem_words[i].id;
		*connect = modem_words[i].connect;
		return 1;
	}
	return 0;
}

enum cause_id cause_from_pppd(int status)
{
	if (status == 0)
		return CAUSE_OK;
	if (status >= 1 && status <= 21)
		return (enum cause_id)(CAUSE_PPP_FATAL + status - 1);
	return CAUSE_PPP_EXIT_OTHER;
}
