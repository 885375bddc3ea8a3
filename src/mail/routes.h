/* The route table ([routes] section) and the credentials file (auth_file):
 * where mail for a domain goes and how. Invariant: a table that config_load
 * accepted has valid hosts and ports, and every auth= name it uses exists in
 * the loaded credentials. */
#ifndef MAIL_ROUTES_H
#define MAIL_ROUTES_H
#include <stdio.h>

#include "lib/buf.h"

struct config;

/* ROUTE_LMTP and ROUTE_SMTP hand mail (usually of a local domain) to the
 * site's mailbox server: LMTP (RFC 2033) on a unix socket or host:port, or
 * SMTP to host:port. ROUTE_SMTP is delivered exactly like ROUTE_SMARTHOST;
 * it exists so the configuration says "internal server" and show-config
 * keeps the word. */
enum route_type { ROUTE_SMARTHOST, ROUTE_MX, ROUTE_LOCAL, ROUTE_HOLD, ROUTE_LMTP, ROUTE_SMTP };
enum route_tls { ROUTE_TLS_OPPORTUNISTIC, ROUTE_TLS_NONE, ROUTE_TLS_REQUIRED };
enum transfer_mode { TRANSFER_BOTH, TRANSFER_INBOUND_ONLY, TRANSFER_OUTBOUND_ONLY, TRANSFER_NONE };

#define ROUTE_DEFAULT_PORT 25
#define ROUTE_LMTP_PORT	   24  /* lmtp host without :port ("lmtp 24/tcp") */
#define ROUTE_UNIX_MAX	   107 /* longest unix socket path (sun_path - 1) */

struct route {
	char *domain; /* "*", "example.org", or ".example.org" (subdomains only) */
	enum route_type type;
	char *host; /* smarthost, smtp, lmtp host: name or address (no brackets); else NULL */
	char *path; /* lmtp unix:PATH: the socket's absolute path (host is NULL); else NULL */
	int port;   /* host:port or port=; ROUTE_DEFAULT_PORT when not given
		       (ROUTE_LMTP_PORT for lmtp; 0 with path) */
	enum route_tls tls;
	char *auth;	   /* auth= credentials name, or NULL */
	char *via;	   /* via= phone book entry the route needs, or NULL */
	char *ca;	   /* ca= CA file for certificate verification, or NULL */
	char *fingerprint; /* fingerprint= SHA-256 of the server certificate, 64 lower-case hex */
	int line;	   /* line of the configuration file */
};

struct auth_cred {
	char *name;
	char *user;
	char *password; /* never printed */
};

struct routes {
	struct route *v;
	size_t n;
	struct auth_cred *auth; /* from auth_file */
	size_t n_auth;
};

/* Parses one "[routes]" line "domain = type [host[:port]] [option=value...]"
 * into rt. On error appends "path:line: route DOMAIN: problem" lines to err
 * and returns the number of errors (0 on success). */
int routes_parse_line(struct routes *rt, const char *path, int line, const char *domain,
		      const char *value, struct buf *err);
/* After the whole file: loads cfg's auth_file (relative to the directory of
 * the configuration file) if given, refusing one that group or others may
 * access (a warning in cfg->warnings with allow_insecure_key_file), and
 * checks every auth= name. Its problems are "config:line: auth_file's file:
 * auth_file: problem" lines (config_where). Returns the number of errors
 * appended to err. */
int routes_finish(struct config *cfg, struct buf *err);
void routes_free(struct routes *rt);
/* Writes the [routes] block as the configuration file syntax (nothing when
 * the table is empty). Passwords are never written. */
void routes_show(const struct routes *rt, FILE *out);

/* The route for a domain: an exact entry, then ".parent" entries from the
 * nearest parent up, then "*". NULL: no route (remote mail stays queued). */
const struct route *routes_lookup(const struct routes *rt, const char *domain);
/* The credentials named name, or NULL. */
const struct auth_cred *routes_auth(const struct routes *rt, const char *name);

/* Reads an auth_file: "NAME USER PASSWORD" per line ('#' comments; the
 * password is the rest of the line). Refuses a file group or others may
 * access. Returns the number of "path: problem" lines appended to err. */
int routes_auth_load(struct routes *rt, const char *path, struct buf *err);

const char *routes_type_name(enum route_type t);
const char *routes_tls_name(enum route_tls t);

/* Check for the transfer_mode setting (config table), and its value. */
int routes_check_transfer_mode(const char *item, struct buf *problem);
enum transfer_mode routes_transfer_mode(const char *value);

#endif
