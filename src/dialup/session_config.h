/* The [session] section of the configuration: when the branch dials, which
 * entries, how long it stays up, and how it retrieves inbound mail.
 * Invariant: a loaded session_config has every duration in seconds and a
 * retrieval method the daemon knows. */
#ifndef DIALUP_SESSION_CONFIG_H
#define DIALUP_SESSION_CONFIG_H
#include <stdio.h>

#include "lib/buf.h"
#include "lib/schedule.h"
#include "lib/strlist.h"
#include "mail/config.h"

struct phonebook;

#define SESSION_N_KEYS 11 /* rows of the [session] table (session_config.c) */

/* [session] settings; every duration in seconds. */
struct session_config {
	int line;		  /* line of the [session] header; 0: defaults */
	struct schedule schedule; /* schedule = every 2h | at ... | grid | off */
	struct strlist entries;	  /* entries = isp, backup; empty: all, file order */
	int idle_timeout;	  /* idle_timeout = 2m */
	int max_session_time;	  /* max_session_time = 1h */
	int session_window;	  /* session_window = 0 (until the next slot; 15m unscheduled) */
	char *retrieve;		  /* retrieve = none */
	enum dwq_mode dwq;	  /* dial_when_queued = N | urgent | off */
	int dwq_count;
	int min_dial_interval;		     /* min_dial_interval = 5m */
	int check_timeout;		     /* check_timeout = 30s */
	int hangup_when_done;		     /* hangup_when_done = yes */
	int done_grace;			     /* done_grace = 5s (etrn, command) */
	unsigned char given[SESSION_N_KEYS]; /* keys given (duplicate detection) */
	/* retrieval settings: rows of each method's table (dialup/etrn.c,
	 * command.c, atrn.c); the shared retrieve_timeout is dialup/retrieve.c's */
	int retrieve_timeout;		  /* retrieve_timeout = 2m */
	unsigned char retrieve_given[32]; /* retrieval keys given, table after table */
	struct strlist etrn_domains;	  /* etrn_domains = a.example, b.example */
	int etrn_grace;			  /* etrn_grace = 60s */
	char *retrieve_command;		  /* retrieve_command = finger @isp */
	/* retrieve = atrn (RFC 2645), parsed in dialup/atrn.c */
	char *atrn_host;	     /* atrn_host = hub:366; NULL: the link route's smarthost */
	struct strlist atrn_domains; /* atrn_domains = branch.example */
	char *atrn_auth;	     /* atrn_auth = NAME in auth_file */
	int atrn_tls;		/* atrn_tls = opportunistic (enum odmr_tls, dialup/odmr_client.h) */
	char *atrn_ca;		/* atrn_ca = FILE: PEM CAs that must sign the hub's certificate */
	char *atrn_fingerprint; /* atrn_fingerprint = sha256:HEX, kept as 64 lower-case hex */
};

/* Config hooks, as phonebook.h: open at "[session]", one call per line;
 * 0 or -1 with problem filled (the parser adds file:line). */
int session_section_open(struct session_config **sc, int line, struct buf *problem);
int session_section_line(struct session_config *sc, const char *key, const char *value,
			 struct buf *problem);
/* After the file: entries exist in the phone book (what the retrieval
 * method needs: retrieve_check). Appends "path:line: [session]: problem"
 * lines; returns their number. */
int session_check(const struct session_config *sc, const struct phonebook *pb, const char *path,
		  struct buf *err);
void session_config_free(struct session_config *sc); /* frees sc; NULL is fine */
void session_show(const struct session_config *sc, FILE *out);
/* [session] for mail/config (config_register); after the file it checks
 * the entries, the retrieval method and turn_enabled. */
extern const struct config_module session_config_module;
/* The defaults (what a configuration without [session] means). */
void session_config_defaults(struct session_config *sc);

#endif
