/* Phone book: the [phonebook NAME] sections of the configuration, one entry
 * each, kept in file order. Parsing lives here; config.c hooks it into its
 * sections table. Invariant: a loaded entry has every field valid for its type. */
#ifndef LINK_PHONEBOOK_H
#define LINK_PHONEBOOK_H
#include <stdio.h>

#include "lib/buf.h"
#include "lib/strlist.h"
#include "mail/config.h"

enum pb_type { PB_MODEM, PB_COMMAND, PB_ALWAYS, PB_ANSWER /* an [answer NAME] line */ };
enum pb_data { PB_DATA_NONE, PB_DATA_PPP, PB_DATA_DIRECT, PB_DATA_COMMAND };

struct phonebook_entry {
	char *name;
	int line;	   /* line of the [phonebook NAME] header */
	enum pb_type type; /* type = modem | command | always (default modem) */
	/* type = modem */
	char *device;		/* device = /dev/ttyS0 */
	int speed;		/* speed = 115200 (port speed, bps) */
	struct strlist init;	/* init = ATZ | AT&F E0 V1 (separated by '|') */
	struct strlist numbers; /* numbers = 5551234, 5559876 (tried in turn) */
	char *dial_prefix;	/* dial_prefix = ATDT (default) */
	int dial_timeout_ms;	/* dial_timeout = 60s: ATD to final result */
	int at_timeout_ms;	/* at_timeout = 3s: AT command to OK */
	int redial_attempts;	/* redial_attempts = 3: attempts per number */
	int redial_interval_ms; /* redial_interval = 30s */
	int hwflow;		/* flow_control = hardware (default) | none */
	enum pb_data data;	/* data = none (default) | ppp | direct | command */
	char *pppd;		/* pppd = /usr/sbin/pppd */
	char *ppp_options;	/* ppp_options = noauth defaultroute (split on blanks) */
	char *ppp_up_file;	/* ppp_up_file = path pppd's ip-up creates; passed as ipparam */
	/* type = command (and data = command: up runs on the line) */
	char *up, *down, *check; /* sh -c commands */
	int up_timeout_ms;	 /* up_timeout = 60s: up + passing check, or pppd to ip-up */
	int bandwidth;		 /* bandwidth = 256000 (bit/s; 0: unknown; CONNECT's wins) */
	/* [answer NAME] only (device, speed, init, at_timeout, flow_control too) */
	int rings;	       /* rings = 1: RINGs before ATA */
	int answer_timeout_ms; /* answer_timeout = 60s: ATA to CONNECT */
};

struct phonebook {
	struct phonebook_entry *v;
	size_t n;
};

/* Config hooks. open: a "[phonebook NAME]" header at line; line: one
 * "key = value" of the current entry; both return 0 or -1 with problem
 * filled (without file:line, which the config parser adds). */
int phonebook_section_open(struct phonebook **pb, const char *name, int line, struct buf *problem);
/* The same for an "[answer NAME]" header: a modem that answers calls (the
 * hub's end of data = direct lines, hub/answer.c). Its entries live in
 * their own struct phonebook, have type PB_ANSWER and take only device,
 * speed, init, at_timeout, flow_control, rings, answer_timeout. */
int phonebook_answer_open(struct phonebook **pb, const char *name, int line, struct buf *problem);
int phonebook_section_line(struct phonebook *pb, const char *key, const char *value,
			   struct buf *problem);
/* Whole-entry checks after the file is read (type modem needs device and
 * numbers, ...). Appends "path:line: [phonebook NAME]: problem" lines to
 * err; returns the number of problems. */
int phonebook_check(const struct phonebook *pb, const char *path, struct buf *err);
void phonebook_free(struct phonebook *pb); /* frees pb itself; NULL is fine */
/* Prints every entry as a [phonebook NAME] (or [answer NAME]) block (show-config). */
void phonebook_show(const struct phonebook *pb, FILE *out);

const struct phonebook_entry *phonebook_find(const struct phonebook *pb, const char *name);
const char *phonebook_type_name(enum pb_type t);
const char *phonebook_data_name(enum pb_data d);

/* [phonebook NAME] and [answer NAME] for mail/config (config_register):
 * entries checked after the file, an answer line's device not also a phone
 * book modem, callers of an answer line able to AUTH. */
extern const struct config_module phonebook_config_module;

#endif
