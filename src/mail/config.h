/* Configuration: every setting is declared once in a table (name, type,
 * default, bounds, help) that the parser, check-config and show-config share.
 * Invariant: a loaded config has every field set to a valid value. */
#ifndef MAIL_CONFIG_H
#define MAIL_CONFIG_H
#include <stdint.h>
#include <stdio.h>

#include "lib/buf.h"
#include "lib/cidr.h"
#include "lib/strlist.h"
#include "mail/event.h"
#include "mail/settings.h"

#define DIALMAIL_VERSION "0.1.0"

struct routes;
struct phonebook;
struct session_config;
struct smtp_auth_users;
struct listen_spec;

struct alias {
	char *name;		/* local part, lower case */
	struct strlist targets; /* local parts or full addresses */
};

struct config {
	char *path;			 /* file loaded, or NULL for embedded defaults */
	char *hostname;			 /* HELO name, Received: by, Message-ID right side */
	struct strlist listen;		 /* "127.0.0.1:2525", "[::1]:2525" */
	struct listen_spec *listen_spec; /* listen.v[i]'s service and overrides (mail/listen.h) */
	struct strlist local_domains;	 /* lower case */
	struct strlist local_recipients; /* local parts, lower case; postmaster implied */
	struct cidr *mynetworks;
	size_t n_mynetworks;
	uint64_t max_message_size; /* bytes */
	int max_recipients;
	int max_connections;
	int smtp_timeout;		    /* seconds, per command */
	int smtp_data_timeout;		    /* seconds, per DATA block */
	int smtp_min_data_rate;		    /* bytes/s over SMTP_RATE_WINDOW in DATA/BDAT; 0: off */
	int smtp_max_session_time;	    /* seconds; 0: no limit */
	int max_connections_per_client;	    /* concurrent, per client address; 0: no limit */
	int max_connection_rate_per_client; /* per minute; 0: no limit */
	int max_messages_per_client;	    /* MAIL commands per minute; 0: no limit */
	int client_limits_exempt_mynetworks; /* the three above skip mynetworks */
	uint64_t min_free_space;	     /* bytes; below: 452 4.3.1 + event 3018 */
	int queue_run_interval;		     /* seconds */
	char *postmaster;		     /* address that gets double bounces */
	int use_syslog;
	int diag[EVC_COUNT]; /* diagnostics level per event category */
	struct alias *aliases;
	size_t n_aliases;
	/* outbound delivery (issue 3); see mail/routes.h and queue/retry.h */
	char *transfer_mode;		/* both, inbound-only, outbound-only, none */
	struct strlist retry_intervals; /* durations, "15m", ...; the last repeats */
	int lifetime_urgent;		/* seconds a message is retried, by priority */
	int lifetime_normal;
	int lifetime_non_urgent;
	int delay_warning_time; /* seconds after arrival; 0 = no delay warnings */
	char *auth_file;	/* "NAME USER PASSWORD" lines, or "" */
	int max_messages_per_connection;
	int max_outbound_connections;
	int max_connections_per_destination;
	int max_connections_without_chunking;
	int smtp_connect_timeout; /* client timeouts, seconds (RFC 5321 4.5.3.2) */
	int smtp_banner_timeout;
	int smtp_helo_timeout;
	int smtp_mail_timeout;
	int smtp_rcpt_timeout;
	int smtp_data_init_timeout;
	int smtp_data_block_timeout;
	int smtp_data_done_timeout;
	struct strlist dns_servers; /* "ip[:port]" for c-ares; empty: system resolver */
	struct routes *routes;	    /* [routes] + credentials; never NULL once loaded */
	/* dial-up links (issue 4); see link/phonebook.h */
	char *lock_dir;			/* UUCP lock files, default /var/lock */
	struct phonebook *phonebook;	/* [phonebook NAME] entries in file order; NULL: none */
	struct session_config *session; /* [session]; NULL: defaults (see dialup/session.h) */
	struct phonebook *answer;	/* [answer NAME] modems taking calls (hub/answer.h) */
	/* SMTP server STARTTLS and AUTH; see smtp/smtp_auth.h */
	char *tls_cert_file; /* PEM; with tls_key_file: STARTTLS offered */
	char *tls_key_file;
	char *auth_users_file;	   /* "user password" lines, or "" (no AUTH) */
	int auth_allow_plaintext;  /* offer AUTH without TLS too */
	char *auth_dovecot_socket; /* Dovecot auth-client socket, or "" (smtp/sasl_dovecot.h) */
	struct smtp_auth_users *auth_users; /* loaded auth_users_file, or NULL */
	/* hub role and inbound duplicates (issue 5); see hub/hub.h, deliver/dedup.h */
	struct strlist hold_domains;	/* lower case; kept queued until ETRN */
	struct cidr *provider_networks; /* inbound SMTP of the provider; none: outside mynetworks */
	size_t n_provider_networks;
	struct cidr *etrn_clients; /* may use ETRN (authenticated clients may too) */
	size_t n_etrn_clients;
	struct strlist etrn_hosts;   /* "domain=host[:port]": where ETRN sends a domain */
	int etrn_default_port;	     /* port of the ETRN client's address otherwise */
	int dedup_window;	     /* seconds; 0: no duplicate suppression */
	int batch_transfer;	     /* XDMBATCH between dialmail peers (docs/batch-protocol.md) */
	int batch_duplex;	     /* ... DUPLEX on the ODMR port: both directions at once */
	struct cidr *batch_networks; /* clients offered XDMBATCH besides adopted sessions */
	size_t n_batch_networks;
	uint64_t batch_checkpoint_size; /* bytes per XDMBATCH data record (a resume point) */
	int batch_partial_expire;	/* seconds an unfinished XDMBATCH message is kept */
	struct strlist odmr_listen;	/* ODMR port(s) of the hub; see hub/odmr.h */
	struct strlist odmr_domains;	/* "user=domain": what ATRN may claim */
	int turn_enabled;		/* retrieve = turn allowed (insecure); dialup/turn.c */
	/* secret files (tls_key_file, auth_file, auth_users_file) group or others
	 * may access: refused, or with this set only a warning */
	int allow_insecure_key_file;
	/* the status page and /metrics (daemon/http.h) */
	char *http_listen;	   /* loopback host:port, or "" (off) */
	int queue_sample_interval; /* seconds between queue samples */
	/* privileges (lib/priv.h): who the daemon becomes when started as root */
	char *user;
	char *group;			     /* "": the user's login group */
	struct strlist supplementary_groups; /* dialout for the modems */
	char *admin_group;		     /* control socket group; "": group */
	int run_as_root;		     /* stay root (tests, demos) */
	int *set_at;	     /* line each top-level setting was given on, 0: default */
	int public_only;     /* loaded without the secret files (config_load_as) */
	struct buf warnings; /* "file:line: problem" lines the file passed with */
};

/* A [section] of the file that a higher layer owns ([phonebook NAME],
 * [session]). open runs at the header (arg: the NAME, or ""; NULL: nothing
 * to do), line for each "key = value" in the section; both return 0, or -1
 * with problem filled (the parser adds "file:line: key:"). */
struct config_section {
	const char *name;
	int takes_name; /* [phonebook NAME] style */
	int (*open)(struct config *cfg, const char *arg, int line, struct buf *problem);
	int (*line)(struct config *cfg, const char *key, const char *value, struct buf *problem);
};

/* A layer's share of the configuration. Layers above this one own parts of
 * struct config (the phone book, [session], the AUTH users); they register a
 * module before any file is loaded (daemon/modules.c does it for all), so
 * this layer never calls up. After the file, finish checks what spans
 * settings and appends "path:line: problem" lines to err, returning their
 * number; show writes the module's blocks for show-config; release frees
 * its parts. Any hook may be NULL. Modules run in registration order. */
struct config_module {
	const char *name;
	const struct config_section *sections;
	size_t n_sections;
	int (*finish)(struct config *cfg, const char *path, struct buf *err);
	void (*show)(const struct config *cfg, FILE *out);
	void (*release)(struct config *cfg);
};
/* Adds m (kept by pointer; registering it again does nothing). */
void config_register(const struct config_module *m);

/* Loads the embedded defaults, then path (if not NULL). On error returns -1
 * and puts "file:line: setting: problem" lines in err. */
int config_load(struct config *cfg, const char *path, struct buf *err);
/* The same; with public_only the secret files (auth_file, auth_users_file,
 * tls_key_file) are neither read nor checked: for a local user's sendmail,
 * who may read the configuration but not the secrets. */
int config_load_as(struct config *cfg, const char *path, int public_only, struct buf *err);
void config_free(struct config *cfg);
/* Where a setting was given, for a message about it: "path:line: ", or
 * "path: " when it kept its default, or "(config): " without a file. */
void config_where(const struct config *cfg, const char *setting, struct buf *out);
/* Appends each line of text to out after where, with control bytes escaped
 * (buf_put_escaped): the checks after the file report through this. */
void config_prefix_lines(struct buf *out, const char *where, const char *text);
/* The check of a file holding a secret, open as fd, named by setting: if
 * group or others may access it, "file: setting: ..." goes to err (returns
 * 1), or with allow_insecure_key_file to warn (returns 0); holds says what
 * the file holds ("passwords", "a private key"). */
int config_check_secret(const struct config *cfg, const char *setting, const char *file, int fd,
			const char *holds, struct buf *err, struct buf *warn);
/* Prints "name = value" for every setting (postconf style); with
 * only_changed, only those that differ from the default (postconf -n). */
void config_show(const struct config *cfg, FILE *out, int only_changed);
/* Appends to out what differs between a and b: the names of top-level
 * settings, "[aliases]", "[routes]", and the name of each module whose
 * sections differ (as config_show would write them). */
void config_changes(const struct config *a, const struct config *b, struct strlist *out);
/* Exchanges the value of top-level setting name between dst and src (a
 * reload keeps what only a restart can change); -1 if there is no such
 * setting or it cannot be exchanged. */
int config_keep(struct config *dst, struct config *src, const char *name);
/* Alias targets for a local part, or NULL. */
const struct alias *config_alias(const struct config *cfg, const char *localpart);
int config_is_local_domain(const struct config *cfg, const char *domain);

/* The daemon records which configuration file serves a state directory in
 * DIR/config.path, so that sendmail and the CLI run against that spool use the
 * same settings without being told. config_recorded_path returns it (caller
 * frees), NULL when none was recorded or the daemon runs on the defaults. */
int config_record_path(const char *dir, const char *path);
char *config_recorded_path(const char *dir);

/* The state directory: --dir if given, else $DIALMAIL_DIR, else the
 * installed spool /var/spool/dialmail. */
const char *config_spool_dir(const char *opt_dir);

/* retry_intervals: how many, and the longest (the config table and
 * queue/retry.c agree through these). */
#define CONFIG_MAX_RETRY_INTERVALS 32
#define CONFIG_MAX_RETRY_DELAY	   (7 * 86400)
/* Check of one listen item's address: host:port or [v6]:port. */
int config_check_listen(const char *item, struct buf *problem);
/* A row of the top-level settings table, or NULL. */
const struct setting *config_setting(const char *name);
/* Rows flagged so may be overridden per listener (listen ... -o name=value). */
#define CONFIG_F_LISTEN F_OWN

/* Check of one retry_intervals item: a duration from 1s to 7d. */
int config_check_retry_interval(const char *item, struct buf *problem);

#endif
