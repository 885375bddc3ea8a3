/* Configuration file parser. Every top-level setting is one row of the
 * settings[] table below (the row form and its types are settings.c);
 * defaults, the parser, check-config and show-config all read that row.
 * Sections of higher layers come from registered modules (config_register).
 * Invariant: config_load either returns 0 with every field valid, or -1 with
 * the struct zeroed and every problem of the file listed in err. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mail/policy.h"
#include "mail/config.h"
#include "mail/event.h"
#include "mail/listen.h"
#include "mail/routes.h"
#include "lib/duration.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

static int check_hostname(const char *item, struct buf *problem);
static int check_domain(const char *item, struct buf *problem);
static int check_localpart(const char *item, struct buf *problem);
static int check_address(const char *item, struct buf *problem);
static int check_http_listen(const char *item, struct buf *problem);

#define KB	   1024LL
#define MB	   (1024LL * KB)
#define GB	   (1024LL * MB)
#define DAY	   86400LL
#define OFF(field) offsetof(struct config, field)
#define DIAG(c, cn)                                                                                \
	{                                                                                          \
		.name = "diag_" c, .type = T_LEVEL, .def = "medium", .off = OFF(diag[cn]),         \
		.help = "diagnostics level of the " c " category: none, minimum, medium, maximum"  \
	}

static const struct setting settings[] = {
    {.name = "listen",
     .type = T_CUSTOM,
     .def = "127.0.0.1:2525",
     .max = 64,
     .off = OFF(listen),
     .help = "addresses the SMTP server listens on, host:port or [v6addr]:port, each optionally "
	     "followed by a service (smtp, submission, submissions) and -o name=value overrides",
     .parse = listen_parse,
     .format = listen_format,
     .release = listen_release,
     .swap = listen_swap},
    {.name = "hostname",
     .type = T_STRING,
     .def = "",
     .off = OFF(hostname),
     .check = check_hostname,
     .help = "name in the SMTP greeting, Received: and Message-ID; empty: the system host name"},
    {.name = "local_domains",
     .type = T_LIST,
     .def = "localhost",
     .off = OFF(local_domains),
     .flags = F_LOWER,
     .check = check_domain,
     .help = "domains whose mail is delivered here (no trailing dot)"},
    {.name = "local_recipients",
     .type = T_LIST,
     .def = "",
     .off = OFF(local_recipients),
     .flags = F_LOWER,
     .check = check_localpart,
     .help = "local parts that have a mailbox here; postmaster always exists"},
    {.name = "mynetworks",
     .type = T_CIDRS,
     .def = "127.0.0.0/8, ::1/128",
     .off = OFF(mynetworks),
     .off_n = OFF(n_mynetworks),
     .help = "client networks (address/prefix) allowed to relay"},
    {.name = "provider_networks",
     .type = T_CIDRS,
     .def = "",
     .off = OFF(provider_networks),
     .off_n = OFF(n_provider_networks),
     .help = "where the provider's inbound SMTP comes from during a dial-up session (empty: any "
	     "client outside mynetworks)"},
    {.name = "max_message_size",
     .type = T_SIZE,
     .def = "10M",
     .min = KB,
     .max = 4 * GB,
     .off = OFF(max_message_size),
     .help = "largest message accepted, in bytes (K, M, G suffixes); announced in EHLO SIZE"},
    {.name = "max_recipients",
     .type = T_INT,
     .def = "100",
     .min = 1,
     .max = 100000,
     .off = OFF(max_recipients),
     .help = "recipients accepted per message; more get 452"},
    {.name = "max_connections",
     .type = T_INT,
     .def = "100",
     .min = 1,
     .max = 10000,
     .off = OFF(max_connections),
     .help = "concurrent SMTP connections; more get 421"},
    {.name = "smtp_timeout",
     .type = T_DURATION,
     .def = "5m",
     .min = 1,
     .max = DAY,
     .flags = CONFIG_F_LISTEN,
     .off = OFF(smtp_timeout),
     .help = "time a client has to send each SMTP command"},
    {.name = "smtp_data_timeout",
     .type = T_DURATION,
     .def = "10m",
     .min = 1,
     .max = DAY,
     .flags = CONFIG_F_LISTEN,
     .off = OFF(smtp_data_timeout),
     .help = "time a client has to send each block of message data"},
    {.name = "smtp_min_data_rate",
     .type = T_INT,
     .def = "0",
     .min = 0,
     .max = 1000000000,
     .flags = CONFIG_F_LISTEN,
     .off = OFF(smtp_min_data_rate),
     .help = "bytes per second a client must send during DATA/BDAT, averaged over 10 s; 0: off "
	     "(adopted dial-up sessions and the ODMR port are exempt)"},
    {.name = "smtp_max_session_time",
     .type = T_DURATION,
     .def = "0",
     .min = 0,
     .max = 7 * DAY,
     .flags = CONFIG_F_LISTEN,
     .off = OFF(smtp_max_session_time),
     .help = "longest SMTP session; 0: no limit (adopted dial-up sessions and the ODMR port are "
	     "exempt)"},
    {.name = "max_connections_per_client",
     .type = T_INT,
     .def = "10",
     .min = 0,
     .max = 10000,
     .flags = CONFIG_F_LISTEN,
     .off = OFF(max_connections_per_client),
     .help = "concurrent SMTP connections from one client address; more get 421 4.7.0; 0: no "
	     "limit"},
    {.name = "max_connection_rate_per_client",
     .type = T_INT,
     .def = "0",
     .min = 0,
     .max = 1000000,
     .flags = CONFIG_F_LISTEN,
     .off = OFF(max_connection_rate_per_client),
     .help = "SMTP connections one client address may open per minute; more get 421 4.7.0; 0: "
	     "no limit"},
    {.name = "max_messages_per_client",
     .type = T_INT,
     .def = "0",
     .min = 0,
     .max = 1000000,
     .flags = CONFIG_F_LISTEN,
     .off = OFF(max_messages_per_client),
     .help = "MAIL commands one client address may send per minute; more get 421 4.7.0; 0: no "
	     "limit"},
    {.name = "client_limits_exempt_mynetworks",
     .type = T_BOOL,
     .def = "yes",
     .flags = CONFIG_F_LISTEN,
     .off = OFF(client_limits_exempt_mynetworks),
     .help = "clients in mynetworks are not held to the per-client limits"},
    {.name = "min_free_space",
     .type = T_SIZE,
     .def = "10M",
     .min = 0,
     .max = 1024 * GB,
     .off = OFF(min_free_space),
     .help = "free disk space below which new mail gets 452 4.3.1 (event 3018)"},
    {.name = "queue_run_interval",
     .type = T_DURATION,
     .def = "1m",
     .min = 1,
     .max = DAY,
     .off = OFF(queue_run_interval),
     .help = "how often the queue is scanned for deliveries due"},
    {.name = "postmaster",
     .type = T_STRING,
     .def = "postmaster",
     .off = OFF(postmaster),
     .check = check_address,
     .help = "address that receives double bounces and problem reports"},
    {.name = "syslog",
     .type = T_BOOL,
     .def = "yes",
     .off = OFF(use_syslog),
     .help = "also write events to syslog (facility mail)"},
    {.name = "transfer_mode",
     .type = T_STRING,
     .def = "both",
     .off = OFF(transfer_mode),
     .check = routes_check_transfer_mode,
     .help = "both, inbound-only, outbound-only or none (accept nothing, deliver what is queued)"},
    {.name = "retry_intervals",
     .type = T_LIST,
     .def = "15m, 30m, 1h, 4h",
     .min = 1,
     .max = CONFIG_MAX_RETRY_INTERVALS,
     .off = OFF(retry_intervals),
     .check = config_check_retry_interval,
     .help = "delays between delivery attempts (+-10% jitter); the last one repeats"},
    {.name = "lifetime_urgent",
     .type = T_DURATION,
     .def = "1d",
     .min = 1,
     .max = 365 * DAY,
     .off = OFF(lifetime_urgent),
     .help = "how long an urgent message is retried before it is bounced"},
    {.name = "lifetime_normal",
     .type = T_DURATION,
     .def = "5d",
     .min = 1,
     .max = 365 * DAY,
     .off = OFF(lifetime_normal),
     .help = "how long a normal message is retried before it is bounced"},
    {.name = "lifetime_non_urgent",
     .type = T_DURATION,
     .def = "7d",
     .min = 1,
     .max = 365 * DAY,
     .off = OFF(lifetime_non_urgent),
     .help = "how long a non-urgent message is retried before it is bounced"},
    {.name = "delay_warning_time",
     .type = T_DURATION,
     .def = "0",
     .min = 0,
     .max = 365 * DAY,
     .off = OFF(delay_warning_time),
     .help = "time after arrival when the sender is told a message is delayed; 0: never"},
    {.name = "auth_file",
     .type = T_STRING,
     .def = "",
     .off = OFF(auth_file),
     .help = "file of 'NAME USER PASSWORD' lines for auth= on routes; mode 600"},
    {.name = "max_messages_per_connection",
     .type = T_INT,
     .def = "100",
     .min = 1,
     .max = 100000,
     .off = OFF(max_messages_per_connection),
     .help = "messages sent over one outbound connection before it is closed"},
    {.name = "smtp_connect_timeout",
     .type = T_DURATION,
     .def = "1m",
     .min = 1,
     .max = DAY,
     .off = OFF(smtp_connect_timeout),
     .help = "outbound: time to establish the TCP connection"},
    {.name = "smtp_banner_timeout",
     .type = T_DURATION,
     .def = "5m",
     .min = 1,
     .max = DAY,
     .off = OFF(smtp_banner_timeout),
     .help = "outbound: time to wait for the server's 220 greeting (RFC 5321 minimum 5m)"},
    {.name = "smtp_helo_timeout",
     .type = T_DURATION,
     .def = "5m",
     .min = 1,
     .max = DAY,
     .off = OFF(smtp_helo_timeout),
     .help = "outbound: time to wait for the EHLO/HELO, STARTTLS, AUTH and RSET replies"},
    {.name = "smtp_mail_timeout",
     .type = T_DURATION,
     .def = "5m",
     .min = 1,
     .max = DAY,
     .off = OFF(smtp_mail_timeout),
     .help = "outbound: time to wait for the MAIL FROM reply (RFC 5321 minimum 5m)"},
    {.name = "smtp_rcpt_timeout",
     .type = T_DURATION,
     .def = "5m",
     .min = 1,
     .max = DAY,
     .off = OFF(smtp_rcpt_timeout),
     .help = "outbound: time to wait for each RCPT TO reply (RFC 5321 minimum 5m)"},
    {.name = "smtp_data_init_timeout",
     .type = T_DURATION,
     .def = "2m",
     .min = 1,
     .max = DAY,
     .off = OFF(smtp_data_init_timeout),
     .help = "outbound: time to wait for the 354 reply to DATA (RFC 5321 minimum 2m)"},
    {.name = "smtp_data_block_timeout",
     .type = T_DURATION,
     .def = "3m",
     .min = 1,
     .max = DAY,
     .off = OFF(smtp_data_block_timeout),
     .help = "outbound: time a block of message data may take to go out (RFC 5321 minimum 3m)"},
    {.name = "smtp_data_done_timeout",
     .type = T_DURATION,
     .def = "10m",
     .min = 1,
     .max = DAY,
     .off = OFF(smtp_data_done_timeout),
     .help = "outbound: time to wait for the reply to the final dot or BDAT LAST (RFC: 10m)"},
    {.name = "max_outbound_connections",
     .type = T_INT,
     .def = "4",
     .min = 1,
     .max = 1000,
     .off = OFF(max_outbound_connections),
     .help = "outbound SMTP connections open at once, in total"},
    {.name = "max_connections_per_destination",
     .type = T_INT,
     .def = "1",
     .min = 1,
     .max = 100,
     .off = OFF(max_connections_per_destination),
     .help = "outbound SMTP connections open at once to one smarthost or domain"},
    {.name = "max_connections_without_chunking",
     .type = T_INT,
     .def = "4",
     .min = 1,
     .max = 100,
     .off = OFF(max_connections_without_chunking),
     .help = "connections at once to a destination known not to offer CHUNKING"},
    {.name = "dns_servers",
     .type = T_LIST,
     .def = "",
     .max = 8,
     .off = OFF(dns_servers),
     .check = policy_check_dns_server,
     .help = "DNS servers for MX and host lookups, ip[:port]; empty: the system's resolver"},
    {.name = "lock_dir",
     .type = T_STRING,
     .def = "/var/lock",
     .off = OFF(lock_dir),
     .help = "directory of the UUCP lock files (LCK..ttyS0) of modem devices"},
    {.name = "user",
     .type = T_STRING,
     .def = "dialmail",
     .off = OFF(user),
     .help = "user the daemon becomes once started as root (after opening its ports)"},
    {.name = "group",
     .type = T_STRING,
     .def = "",
     .off = OFF(group),
     .help = "group the daemon becomes (spool and logs belong to it); empty: the user's group"},
    {.name = "supplementary_groups",
     .type = T_LIST,
     .def = "dialout",
     .max = 8,
     .off = OFF(supplementary_groups),
     .help = "groups kept after the drop (dialout: serial modems); missing ones are skipped"},
    {.name = "admin_group",
     .type = T_STRING,
     .def = "",
     .off = OFF(admin_group),
     .help = "group that may use the control socket (mode 0660); empty: the daemon's group"},
    {.name = "run_as_root",
     .type = T_BOOL,
     .def = "no",
     .off = OFF(run_as_root),
     .help = "started as root, stay root instead of becoming user (tests, demos)"},
    {.name = "tls_cert_file",
     .type = T_STRING,
     .def = "",
     .off = OFF(tls_cert_file),
     .help = "PEM certificate (chain) of the SMTP server; with tls_key_file, STARTTLS is offered"},
    {.name = "tls_key_file",
     .type = T_STRING,
     .def = "",
     .off = OFF(tls_key_file),
     .help = "PEM private key that goes with tls_cert_file"},
    {.name = "auth_users_file",
     .type = T_STRING,
     .def = "",
     .off = OFF(auth_users_file),
     .help = "file of 'user password' lines for SMTP AUTH by clients; mode 600; empty: no AUTH"},
    {.name = "auth_allow_plaintext",
     .type = T_BOOL,
     .def = "no",
     .off = OFF(auth_allow_plaintext),
     .help = "offer AUTH on connections without TLS too (passwords then cross in clear)"},
    {.name = "auth_dovecot_socket",
     .type = T_STRING,
     .def = "",
     .off = OFF(auth_dovecot_socket),
     .help = "Dovecot's auth-client socket: SMTP AUTH is checked by Dovecot (as Postfix's "
	     "smtpd_sasl_type = dovecot) instead of auth_users_file; empty: not used"},
    {.name = "hold_domains",
     .type = T_LIST,
     .def = "",
     .off = OFF(hold_domains),
     .flags = F_LOWER,
     .check = check_domain,
     .help = "domains accepted from anyone and kept queued until their site asks with ETRN"},
    {.name = "etrn_clients",
     .type = T_CIDRS,
     .def = "",
     .off = OFF(etrn_clients),
     .off_n = OFF(n_etrn_clients),
     .help = "client networks that may use ETRN (authenticated clients may too)"},
    {.name = "etrn_hosts",
     .type = T_LIST,
     .def = "",
     .off = OFF(etrn_hosts),
     .flags = F_LOWER,
     .check = policy_check_etrn_host,
     .help = "domain=host[:port]: where ETRN sends a held domain; else the client's address"},
    {.name = "etrn_default_port",
     .type = T_INT,
     .def = "25",
     .min = 1,
     .max = 65535,
     .off = OFF(etrn_default_port),
     .help = "port on the ETRN client's address that released mail goes to"},
    {.name = "odmr_listen",
     .type = T_LIST,
     .def = "",
     .off = OFF(odmr_listen),
     .check = config_check_listen,
     .help =
	 "host:port list of the hub's ODMR (RFC 2645, ATRN) port, 366 by convention; empty: off"},
    {.name = "odmr_domains",
     .type = T_LIST,
     .def = "",
     .off = OFF(odmr_domains),
     .flags = F_LOWER,
     .check = policy_check_odmr_domain,
     .help = "user=domain: the held domains an authenticated ODMR user may claim with ATRN"},
    {.name = "turn_enabled",
     .type = T_BOOL,
     .def = "no",
     .off = OFF(turn_enabled),
     .help = "allow retrieve = turn (RFC 821 TURN: insecure, no authentication of the site)"},
    {.name = "dedup_window",
     .type = T_DURATION,
     .def = "1d",
     .min = 0,
     .max = 30 * DAY,
     .off = OFF(dedup_window),
     .help =
	 "a Message-ID delivered locally to a recipient is not delivered again within it; 0: off"},
    {.name = "http_listen",
     .type = T_STRING,
     .def = "",
     .off = OFF(http_listen),
     .check = check_http_listen,
     .help = "loopback host:port or unix:/path of the status page and /metrics (Prometheus); "
	     "empty: off"},
    {.name = "queue_sample_interval",
     .type = T_DURATION,
     .def = "1m",
     .min = 1,
     .max = 3600,
     .off = OFF(queue_sample_interval),
     .help = "how often the queue size is written to DIR/queue.samples (the status page's "
	     "history)"},
    {.name = "batch_transfer",
     .type = T_BOOL,
     .def = "yes",
     .off = OFF(batch_transfer),
     .help = "compressed XDMBATCH transfers with dialmail peers (batch_networks, answered calls, "
	     "providers that list it); no: plain SMTP only"},
    {.name = "batch_duplex",
     .type = T_BOOL,
     .def = "yes",
     .off = OFF(batch_duplex),
     .help = "the hub's ODMR port offers XDMBATCH DUPLEX: a branch's batch and its held mail "
	     "on one connection at once; no: one after the other (XDMBATCH, then ATRN)"},
    {.name = "batch_networks",
     .type = T_CIDRS,
     .def = "",
     .off = OFF(batch_networks),
     .off_n = OFF(n_batch_networks),
     .help = "dialmail peers (address/prefix) offered XDMBATCH on the SMTP listener; adopted "
	     "dial-up and ATRN sessions are offered it always"},
    {.name = "batch_checkpoint_size",
     .type = T_SIZE,
     .def = "16K",
     .min = 1024,
     .max = 1024 * KB,
     .off = OFF(batch_checkpoint_size),
     .help = "bytes of a message between XDMBATCH resume points: at most this crosses twice after "
	     "a drop"},
    {.name = "batch_partial_expire",
     .type = T_DURATION,
     .def = "3d",
     .min = 1,
     .max = 30 * DAY,
     .off = OFF(batch_partial_expire),
     .help = "an unfinished XDMBATCH message not continued within it is deleted"},
    DIAG("initialization", EVC_INIT),
    DIAG("smtp", EVC_SMTP),
    DIAG("transfer", EVC_TRANSFER),
    DIAG("queue", EVC_QUEUE),
    DIAG("delivery", EVC_DELIVERY),
    DIAG("dialup", EVC_DIALUP),
    DIAG("security", EVC_SECURITY),
    {.name = "allow_insecure_key_file",
     .type = T_BOOL,
     .def = "no",
     .off = OFF(allow_insecure_key_file),
     .help = "accept tls_key_file, auth_file and auth_users_file that group or others may "
	     "access, with a warning (default: refuse them)"},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* The state of one pass over a file. */
struct parser {
	struct config *cfg;
	const char *path;
	int line;
	struct buf *err;
	int n_errors;
	int set_at[N_SETTINGS];		       /* line a setting was given on, 0 = not yet */
	const struct builtin_section *builtin; /* [aliases], [routes]; NULL: see sect */
	const struct config_section *sect;     /* a module's section; both NULL: main settings */
	int skip;			       /* inside a rejected section header */
	int *alias_line;		       /* line of each cfg->aliases entry */
};

/* A [section] kind of this file's own: its lines go to line(). The sections
 * of higher layers come from the registered modules (config_register). */
struct builtin_section {
	const char *name;
	void (*line)(struct parser *p, const char *key, const char *value);
};

static void aliases_line(struct parser *p, const char *key, const char *value);
static void routes_section_line(struct parser *p, const char *key, const char *value);

static const struct builtin_section builtins[] = {
    {"aliases", aliases_line},
    {"routes", routes_section_line},
};

/* The modules of higher layers, in the order they registered: their
 * sections, checks after the file, show-config blocks and release. */
#define MAX_MODULES 16
static const struct config_module *modules[MAX_MODULES];
static size_t n_modules;

void config_register(const struct config_module *m)
{
	for (size_t i = 0; i < n_modules; i++)
		if (modules[i] == m)
			return;
	if (n_modules == MAX_MODULES)
		panic("config: more than %d configuration modules", MAX_MODULES);
	modules[n_modules++] = m;
}

/* --- errors ------------------------------------------------------------ */

static void parser_error(struct parser *p, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void parser_error(struct parser *p, const char *what, const char *fmt, ...)
{
	struct buf text = BUF_INIT;
	va_list ap;

	buf_printf(&text, "%s:%d: %s: ", p->path, p->line, what);
	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	buf_put_escaped(p->err, text.data, text.len);
	buf_putc(p->err, '\n');
	buf_free(&text);
	p->n_errors++;
}

/* --- item checks ------------------------------------------------------- */

int config_check_listen(const char *item, struct buf *problem)
{
	const char *colon = strrchr(item, ':');
	char *end;
	long port;

	if (colon == NULL || colon == item) {
		buf_printf(problem, "'%s' is not host:port", item);
		return -1;
	}
	if (item[0] == '[' ? colon[-1] != ']' || colon - item < 3
			   : memchr(item, ':', (size_t)(colon - item)) != NULL) {
		buf_printf(problem, "'%s': an IPv6 address goes in brackets, [::1]:2525", item);
		return -1;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno || port < 1 || port > 65535) {
		buf_printf(problem, "'%s': port must be 1 to 65535", item);
		return -1;
	}
	return 0;
}

/* Empty, host:port on a loopback address, or unix:/path (a socket only its
 * owner and group may use, for a reverse proxy): the status page has no
 * authentication of its own, so it is not offered to the network. */
static int check_http_listen(const char *item, struct buf *problem)
{
	if (*item == '\0')
		return 0;
	if (strncmp(item, "unix:", 5) == 0) {
		if (item[5] == '/' && strlen(item + 5) <= ROUTE_UNIX_MAX)
			return 0;
		buf_printf(problem, "'%s': expected unix:/absolute/path (at most %d characters)",
			   item, ROUTE_UNIX_MAX);
		return -1;
	}
	if (config_check_listen(item, problem) < 0)
		return -1;
	if (strncmp(item, "127.", 4) == 0 || strncmp(item, "[::1]:", 6) == 0 ||
	    strncmp(item, "localhost:", 10) == 0)
		return 0;
	buf_printf(problem,
		   "'%s': the status page has no authentication; use a loopback "
		   "address (127.0.0.1:9465, [::1]:9465)",
		   item);
	return -1;
}

/* Letters, digits, '-' and '.', with no empty label. */
static int check_hostname(const char *item, struct buf *problem)
{
	size_t n = strlen(item);

	if (n == 0)
		return 0;
	if (strspn(item, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != n ||
	    item[0] == '.' || item[n - 1] == '.' || strstr(item, "..") || n > 253) {
		buf_printf(problem, "'%s' is not a valid host name", item);
		return -1;
	}
	return 0;
}

static int check_domain(const char *item, struct buf *problem)
{
	if (item[strlen(item) - 1] == '.') {
		buf_printf(problem, "'%s': write domains without the trailing dot", item);
		return -1;
	}
	return check_hostname(item, problem);
}

/* A local part may become a mailbox path, so nothing that can climb or nest. */
static int check_localpart(const char *item, struct buf *problem)
{
	const unsigned char *c;

	if (item[0] == '\0' || item[0] == '.' || strchr(item, '/') || strstr(item, "..") ||
	    strchr(item, '@'))
		goto bad;
	for (c = (const unsigned char *)item; *c; c++)
		if (*c <= ' ' || *c == 0x7f || *c == '\\' || *c == '"')
			goto bad;
	return 0;
bad:
	buf_printf(problem, "'%s' is not a valid local part (no '/', '..', '@', leading '.')",
		   item);
	return -1;
}

static int check_address(const char *item, struct buf *problem)
{
	const char *at = strrchr(item, '@');
	int rc;

	if (at == NULL)
		return check_localpart(item, problem);
	if (at == item || at[1] == '\0') {
		buf_printf(problem, "'%s' is not an address", item);
		return -1;
	}
	char *local = xstrndup(item, (size_t)(at - item));
	rc = check_localpart(local, problem);
	free(local);
	return rc == 0 ? check_domain(at + 1, problem) : -1;
}

/* --- settings and sections --------------------------------------------- */

static const struct setting *setting_find(const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

const struct setting *config_setting(const char *name)
{
	return setting_find(name);
}

/* Edit distance of two short names, capped at 9 (enough to spot a typo). */
static int name_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int row[64], prev, tmp;

	if (la >= 64 || lb >= 64)
		return 9;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			tmp = row[j];
			row[j] = prev + (tolower((unsigned char)a[i - 1]) != b[j - 1]);
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			if (tmp + 1 < row[j])
				row[j] = tmp + 1;
			prev = tmp;
		}
	}
	return row[lb] > 9 ? 9 : row[lb];
}

/* The setting a misspelt name was probably meant to be, or NULL. */
static const struct setting *setting_guess(const char *name)
{
	const struct setting *best = NULL;
	int best_d = 3;

	for (size_t i = 0; i < N_SETTINGS; i++) {
		int d = name_distance(name, settings[i].name);
		if (d < best_d && (size_t)d * 3 <= strlen(settings[i].name)) {
			best = &settings[i];
			best_d = d;
		}
	}
	return best;
}

static void settings_line(struct parser *p, const char *key, const char *value)
{
	const struct setting *s = setting_find(key);
	struct buf problem = BUF_INIT;
	size_t i;

	if (s == NULL) {
		const struct setting *guess = setting_guess(key);
		if (guess)
			parser_error(p, key, "unknown setting (did you mean %s?)", guess->name);
		else
			parser_error(p, key, "unknown setting");
		return;
	}
	i = (size_t)(s - settings);
	if (p->set_at[i]) {
		parser_error(p, key, "set twice, first at line %d", p->set_at[i]);
		return;
	}
	p->set_at[i] = p->line;
	if (settings_parse_value(s, p->cfg, value, &problem) < 0)
		parser_error(p, key, "%s", buf_cstr(&problem));
	buf_free(&problem);
}

static struct alias *alias_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_aliases; i++)
		if (strcasecmp(cfg->aliases[i].name, name) == 0)
			return &cfg->aliases[i];
	return NULL;
}

/* Targets that are bare local parts are lower-cased like local_recipients. */
static int alias_targets(struct parser *p, const char *what, const char *value, struct strlist *out)
{
	struct buf problem = BUF_INIT;

	strlist_split(out, value);
	if (out->n == 0)
		parser_error(p, what, "no target");
	for (size_t i = 0; i < out->n; i++) {
		if (strchr(out->v[i], '@') == NULL)
			for (char *c = out->v[i]; *c; c++)
				*c = (char)tolower((unsigned char)*c);
		buf_reset(&problem);
		if (check_address(out->v[i], &problem) < 0)
			parser_error(p, what, "target %s", buf_cstr(&problem));
	}
	buf_free(&problem);
	return out->n == 0 ? -1 : 0;
}

static void aliases_line(struct parser *p, const char *key, const char *value)
{
	struct buf problem = BUF_INIT;
	struct strlist targets = {0};
	char *name = xstrdup(key);
	char *what = xasprintf("alias %s", key);
	struct alias *dup;
	int errors = p->n_errors;

	for (char *c = name; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (check_localpart(name, &problem) < 0)
		parser_error(p, what, "%s", buf_cstr(&problem));
	else if (strchr(name, '_') && setting_find(name))
		parser_error(p, what, "'%s' is a setting; settings go before the first [section]",
			     name);
	else if ((dup = alias_find(p->cfg, name)) != NULL)
		parser_error(p, what, "set twice, first at line %d",
			     p->alias_line[dup - p->cfg->aliases]);
	alias_targets(p, what, value, &targets);
	if (p->n_errors > errors)
		goto done;
	p->cfg->aliases = xrealloc(p->cfg->aliases, (p->cfg->n_aliases + 1) * sizeof(struct alias));
	p->alias_line = xrealloc(p->alias_line, (p->cfg->n_aliases + 1) * sizeof(int));
	p->alias_line[p->cfg->n_aliases] = p->line;
	p->cfg->aliases[p->cfg->n_aliases++] = (struct alias){name, targets};
	name = NULL;
	targets = (struct strlist){0};
done:
	strlist_free(&targets);
	buf_free(&problem);
	free(name);
	free(what);
}

/* [routes] lines are parsed in mail/routes.c. */
static void routes_section_line(struct parser *p, const char *key, const char *value)
{
	struct buf text = BUF_INIT;

	p->n_errors += routes_parse_line(p->cfg->routes, p->path, p->line, key, value, &text);
	config_prefix_lines(p->err, "", buf_cstr(&text));
	buf_free(&text);
}

/* A registered module's section: open() at the header, then line() per
 * line; their problems get the file and line here. */
static int module_open(struct parser *p, const struct config_section *sec, const char *arg)
{
	struct buf problem = BUF_INIT;
	char *what = xasprintf("[%s]", sec->name);
	int rc = sec->open ? sec->open(p->cfg, arg, p->line, &problem) : 0;

	if (rc < 0)
		parser_error(p, what, "%s", buf_cstr(&problem));
	free(what);
	buf_free(&problem);
	return rc;
}

static void module_line(struct parser *p, const char *key, const char *value)
{
	struct buf problem = BUF_INIT;

	if (p->sect->line(p->cfg, key, value, &problem) < 0)
		parser_error(p, key, "%s", buf_cstr(&problem));
	buf_free(&problem);
}

/* The section named text: a builtin one, or one a module registered. */
static const struct config_section *find_module_section(const char *text)
{
	for (size_t i = 0; i < n_modules; i++)
		for (size_t j = 0; j < modules[i]->n_sections; j++)
			if (strcmp(modules[i]->sections[j].name, text) == 0)
				return &modules[i]->sections[j];
	return NULL;
}

/* "[kind]" or "[kind name]": switch to that section or reject it. */
static void parser_section(struct parser *p, char *text)
{
	char *hdr = xasprintf("[%s]", text);
	char *arg = text + strcspn(text, " \t");
	const struct config_section *sec = NULL;

	if (*arg) {
		*arg++ = '\0';
		arg += strspn(arg, " \t");
	}
	p->skip = 1;
	p->builtin = NULL;
	p->sect = NULL;
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (strcmp(builtins[i].name, text) == 0) {
			if (*arg)
				parser_error(p, hdr, "section takes no name");
			else {
				p->builtin = &builtins[i];
				p->skip = 0;
			}
			free(hdr);
			return;
		}
	sec = find_module_section(text);
	if (sec == NULL)
		parser_error(p, hdr, "unknown section");
	else if (sec->takes_name && *arg == '\0')
		parser_error(p, hdr, "section needs a name: [%s NAME]", text);
	else if (!sec->takes_name && *arg)
		parser_error(p, hdr, "section takes no name");
	else if (module_open(p, sec, arg) == 0) {
		p->sect = sec;
		p->skip = 0;
	}
	free(hdr);
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		e--;
	*e = '\0';
	return s;
}

/* Comments: a line starting with '#', or '#' after a blank ("x = 1  # why"). */
static void strip_comment(char *s)
{
	for (char *c = s; *c; c++)
		if (*c == '#' && (c == s || c[-1] == ' ' || c[-1] == '\t')) {
			*c = '\0';
			return;
		}
}

static void parser_line(struct parser *p, char *raw)
{
	char *s, *eq, *key;

	strip_comment(raw);
	s = trim(raw);
	if (*s == '\0')
		return;
	if (*s == '[') {
		size_t n = strlen(s);
		if (s[n - 1] != ']') {
			p->skip = 1;
			parser_error(p, s, "section header without closing ']'");
			return;
		}
		s[n - 1] = '\0';
		parser_section(p, trim(s + 1));
		return;
	}
	if (p->skip)
		return;
	eq = strchr(s, '=');
	if (eq == NULL) {
		parser_error(p, s, "expected 'name = value'");
		return;
	}
	*eq = '\0';
	key = trim(s);
	if (*key == '\0') {
		parser_error(p, "=", "no name before '='");
		return;
	}
	if (p->builtin)
		p->builtin->line(p, key, trim(eq + 1));
	else if (p->sect)
		module_line(p, key, trim(eq + 1));
	else
		settings_line(p, key, trim(eq + 1));
}

static void parser_file(struct parser *p, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;

	while (getline(&line, &cap, f) >= 0) {
		p->line++;
		parser_line(p, line);
	}
	free(line);
}

/* --- load / free / queries --------------------------------------------- */

static void config_defaults(struct config *cfg)
{
	const struct settings_table t = {NULL, settings, N_SETTINGS};

	settings_defaults(&t, cfg);
}

static void config_resolve_hostname(struct config *cfg)
{
	char host[256];

	if (cfg->hostname && cfg->hostname[0])
		return;
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	free(cfg->hostname);
	cfg->hostname = xstrdup(host);
}

int config_load(struct config *cfg, const char *path, struct buf *err)
{
	return config_load_as(cfg, path, 0, err);
}

int config_load_as(struct config *cfg, const char *path, int public_only, struct buf *err)
{
	struct parser p = {.cfg = cfg, .path = path, .err = err};
	FILE *f;

	memset(cfg, 0, sizeof(*cfg));
	cfg->public_only = public_only;
	config_defaults(cfg);
	cfg->routes = xcalloc(1, sizeof(*cfg->routes));
	if (path) {
		cfg->path = xstrdup(path);
		if ((f = fopen(path, "r")) == NULL) {
			buf_put_escaped(err, path, strlen(path));
			buf_printf(err, ": cannot open: %s\n", strerror(errno));
			goto fail;
		}
		parser_file(&p, f);
		fclose(f);
	}
	free(p.alias_line);
	cfg->set_at = xmalloc(sizeof(p.set_at));
	memcpy(cfg->set_at, p.set_at, sizeof(p.set_at));
	p.n_errors += routes_finish(cfg, err);
	for (size_t i = 0; i < n_modules; i++) {
		struct buf text = BUF_INIT; /* escaped on the way to err */

		if (modules[i]->finish)
			p.n_errors += modules[i]->finish(cfg, path, &text);
		config_prefix_lines(err, "", buf_cstr(&text));
		buf_free(&text);
	}
	if (p.n_errors)
		goto fail;
	config_resolve_hostname(cfg);
	return 0;
fail:
	config_free(cfg);
	return -1;
}

void config_free(struct config *cfg)
{
	const struct settings_table t = {NULL, settings, N_SETTINGS};

	settings_release(&t, cfg);
	for (size_t i = 0; i < cfg->n_aliases; i++) {
		free(cfg->aliases[i].name);
		strlist_free(&cfg->aliases[i].targets);
	}
	free(cfg->aliases);
	routes_free(cfg->routes);
	free(cfg->routes);
	for (size_t i = 0; i < n_modules; i++)
		if (modules[i]->release)
			modules[i]->release(cfg);
	free(cfg->path);
	free(cfg->set_at);
	buf_free(&cfg->warnings);
	memset(cfg, 0, sizeof(*cfg));
}

void config_where(const struct config *cfg, const char *setting, struct buf *out)
{
	const struct setting *s = setting_find(setting);
	int line = s && cfg->set_at ? cfg->set_at[s - settings] : 0;

	if (cfg->path == NULL)
		buf_puts(out, "(config): ");
	else if (line > 0)
		buf_printf(out, "%s:%d: ", cfg->path, line);
	else
		buf_printf(out, "%s: ", cfg->path);
}

void config_prefix_lines(struct buf *out, const char *where, const char *text)
{
	while (*text) {
		size_t n = strcspn(text, "\n");

		buf_put_escaped(out, where, strlen(where));
		buf_put_escaped(out, text, n);
		buf_putc(out, '\n');
		text += n + (text[n] == '\n');
	}
}

int config_check_secret(const struct config *cfg, const char *setting, const char *file, int fd,
			const char *holds, struct buf *err, struct buf *warn)
{
	struct buf problem = BUF_INIT;
	int rc = fs_secret_mode(fd, &problem);

	if (rc == 0)
		goto done;
	if (rc < 0)
		buf_printf(err, "%s: %s: %s\n", file, setting, buf_cstr(&problem));
	else if (!cfg || !cfg->allow_insecure_key_file)
		buf_printf(err,
			   "%s: %s: %s; it holds %s: chmod 600 it, owned by the daemon's user, "
			   "or set allow_insecure_key_file = yes\n",
			   file, setting, buf_cstr(&problem), holds);
	else
		buf_printf(warn,
			   "%s: %s: %s; it holds %s: allowed by allow_insecure_key_file = yes, but "
			   "chmod 600 it\n",
			   file, setting, buf_cstr(&problem), holds);
	rc = rc < 0 || !cfg || !cfg->allow_insecure_key_file;
done:
	buf_free(&problem);
	return rc;
}

static void config_show_aliases(const struct config *cfg, FILE *out);

void config_show(const struct config *cfg, FILE *out, int only_changed)
{
	struct config def;
	struct buf v = BUF_INIT, d = BUF_INIT, err = BUF_INIT;

	if (only_changed && config_load(&def, NULL, &err) < 0)
		panic("config: embedded defaults: %s", buf_cstr(&err));
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		buf_reset(&v);
		settings_format(s, cfg, &v);
		if (only_changed) {
			buf_reset(&d);
			settings_format(s, &def, &d);
			if (strcmp(buf_cstr(&v), buf_cstr(&d)) == 0)
				continue;
		}
		fprintf(out, "%s =%s%s\n", s->name, v.len ? " " : "", buf_cstr(&v));
	}
	if (cfg->n_aliases)
		fprintf(out, "\n[aliases]\n");
	config_show_aliases(cfg, out);
	routes_show(cfg->routes, out);
	for (size_t i = 0; i < n_modules; i++)
		if (modules[i]->show)
			modules[i]->show(cfg, out);
	if (only_changed)
		config_free(&def);
	buf_free(&v);
	buf_free(&d);
	buf_free(&err);
}

/* What a show hook writes for cfg, as a string (to compare). */
static char *config_block_text(const struct config *cfg,
			       void (*show)(const struct config *, FILE *))
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return xstrdup("");
	show(cfg, f);
	fclose(f);
	return text;
}

static void config_show_aliases(const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < cfg->n_aliases; i++) {
		const struct strlist *t = &cfg->aliases[i].targets;
		fprintf(out, "%s =", cfg->aliases[i].name);
		for (size_t j = 0; j < t->n; j++)
			fprintf(out, "%s%s", j ? ", " : " ", t->v[j]);
		fputc('\n', out);
	}
}

static void config_show_routes(const struct config *cfg, FILE *out)
{
	routes_show(cfg->routes, out);
}

static void config_block_differs(const struct config *a, const struct config *b,
				 void (*show)(const struct config *, FILE *), const char *name,
				 struct strlist *out)
{
	char *ta = config_block_text(a, show), *tb = config_block_text(b, show);

	if (strcmp(ta, tb) != 0)
		strlist_add(out, name);
	free(ta);
	free(tb);
}

void config_changes(const struct config *a, const struct config *b, struct strlist *out)
{
	struct buf va = BUF_INIT, vb = BUF_INIT;

	for (size_t i = 0; i < N_SETTINGS; i++) {
		buf_reset(&va);
		buf_reset(&vb);
		settings_format(&settings[i], a, &va);
		settings_format(&settings[i], b, &vb);
		if (strcmp(buf_cstr(&va), buf_cstr(&vb)) != 0)
			strlist_add(out, settings[i].name);
	}
	config_block_differs(a, b, config_show_aliases, "[aliases]", out);
	config_block_differs(a, b, config_show_routes, "[routes]", out);
	for (size_t i = 0; i < n_modules; i++)
		if (modules[i]->show)
			config_block_differs(a, b, modules[i]->show, modules[i]->name, out);
	buf_free(&va);
	buf_free(&vb);
}

int config_keep(struct config *dst, struct config *src, const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return settings_swap(&settings[i], dst, src);
	return -1;
}

const struct alias *config_alias(const struct config *cfg, const char *localpart)
{
	return alias_find(cfg, localpart);
}

int config_is_local_domain(const struct config *cfg, const char *domain)
{
	return strlist_has_nocase(&cfg->local_domains, domain);
}

int config_record_path(const char *dir, const char *path)
{
	char *file = xasprintf("%s/config.path", dir);
	char *abs = path ? realpath(path, NULL) : NULL;
	const char *text = abs ? abs : "";
	int rc = fs_write_atomic(file, text, strlen(text), 0644);

	free(abs);
	free(file);
	return rc;
}

char *config_recorded_path(const char *dir)
{
	char *file = xasprintf("%s/config.path", dir);
	struct buf b = BUF_INIT;
	char *path = NULL;

	if (fs_read_file(file, &b) == 0 && b.len > 0 && memchr(b.data, '\0', b.len) == NULL)
		path = buf_steal(&b);
	buf_free(&b);
	free(file);
	return path;
}

const char *config_spool_dir(const char *opt_dir)
{
	const char *env = getenv("DIALMAIL_DIR");

	if (opt_dir)
		return opt_dir;
	if (env && *env)
		return env;
	return "/var/spool/dialmail";
}

int config_check_retry_interval(const char *item, struct buf *problem)
{
	long long n = duration_parse(item, CONFIG_MAX_RETRY_DELAY);

	if (n >= 1 && n <= CONFIG_MAX_RETRY_DELAY)
		return 0;
	buf_printf(problem, "'%s' is not a duration from 1s to 7d (a number with s, m, h or d)",
		   item);
	return -1;
}
