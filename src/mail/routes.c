/* The route table: parsing of [routes] lines and of the credentials file,
 * lookup by domain (most specific entry wins). Invariant: every route in a
 * table has a valid type, host and port; problems are reported as
 * "file:line: route DOMAIN: problem", all of them, never just the first. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/routes.h"
#include "mail/config.h"
#include "lib/fingerprint.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"
#include "mail/smtp_addr.h"

static const char *const type_names[] = {"smarthost", "mx", "local", "hold", "lmtp", "smtp"};
static const char *const tls_names[] = {"opportunistic", "none", "required"};
static const char *const mode_names[] = {"both", "inbound-only", "outbound-only", "none"};

#define N_NAMES(a) (sizeof(a) / sizeof(a[0]))

/* Index of s in names (case-insensitive), or -1. */
static int routes_name_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

const char *routes_type_name(enum route_type t)
{
	return type_names[t];
}

const char *routes_tls_name(enum route_tls t)
{
	return tls_names[t];
}

int routes_check_transfer_mode(const char *item, struct buf *problem)
{
	if (routes_name_index(mode_names, N_NAMES(mode_names), item) >= 0)
		return 0;
	buf_printf(problem, "'%s' is not both, inbound-only, outbound-only or none", item);
	return -1;
}

enum transfer_mode routes_transfer_mode(const char *value)
{
	int i = value ? routes_name_index(mode_names, N_NAMES(mode_names), value) : -1;

	return i < 0 ? TRANSFER_BOTH : (enum transfer_mode)i;
}

/* --- one line ------------------------------------------------------------ */

/* The route being parsed and where its problems go. */
struct route_ctx {
	const char *path;
	int line;
	const char *domain;
	struct buf *err;
	int n_errors;
	int port_given;
};

static void routes_error(struct route_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void routes_error(struct route_ctx *c, const char *fmt, ...)
{
	va_list ap;

	buf_printf(c->err, "%s:%d: route %s: ", c->path ? c->path : "(config)", c->line, c->domain);
	va_start(ap, fmt);
	buf_vprintf(c->err, fmt, ap);
	va_end(ap);
	buf_putc(c->err, '\n');
	c->n_errors++;
}

static int routes_parse_port(const char *s, int *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || *end != '\0' || errno || n < 1 || n > 65535)
		return -1;
	*out = (int)n;
	return 0;
}

/* A host name, or an IPv4 / IPv6 address (the latter only in brackets). */
static int routes_host_valid(const char *h, int bracketed)
{
	unsigned char addr[16];

	if (bracketed)
		return inet_pton(AF_INET, h, addr) == 1 || inet_pton(AF_INET6, h, addr) == 1;
	return smtp_addr_domain_valid(h, strlen(h));
}

/* "host", "host:port", "[addr]" or "[addr]:port". */
static void routes_parse_hostport(struct route_ctx *c, struct route *r, const char *s)
{
	const char *host = s, *rest, *colon;
	size_t hlen;

	if (s[0] == '[') {
		rest = strchr(s, ']');
		host = s + 1;
		hlen = rest ? (size_t)(rest - host) : 0;
		rest = rest ? rest + 1 : "";
		if (hlen == 0 || (*rest && *rest != ':'))
			goto bad;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':')) {
			routes_error(c, "'%s': an IPv6 address goes in brackets, [2001:db8::1]:25",
				     s);
			return;
		}
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		rest = colon ? colon : "";
	}
	r->host = xstrndup(host, hlen);
	if (!routes_host_valid(r->host, s[0] == '['))
		goto bad;
	if (*rest && routes_parse_port(rest + 1, &r->port) < 0)
		goto bad;
	c->port_given = *rest != '\0';
	return;
bad:
	routes_error(c, "'%s' is not host[:port] (port 1 to 65535)", s);
}

static int routes_name_valid(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < 64 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static void routes_set_str(struct route_ctx *c, char **field, const char *key, const char *v)
{
	if (*field) {
		routes_error(c, "%s= given twice", key);
		return;
	}
	*field = xstrdup(v);
}

/* "unix:/path" of an lmtp route: an absolute path a sockaddr_un can hold. */
static void routes_parse_unix(struct route_ctx *c, struct route *r, const char *s)
{
	const char *path = s + 5;

	if (path[0] != '/' || strlen(path) > ROUTE_UNIX_MAX)
		routes_error(c, "'%s': expected unix:/absolute/path (at most %d characters)", s,
			     ROUTE_UNIX_MAX);
	else
		r->path = xstrdup(path);
	r->port = 0;
}

/* One "key=value" option of a smarthost, smtp, lmtp (TCP) or mx route. */
static void routes_option(struct route_ctx *c, struct route *r, const char *key, const char *v)
{
	int i;

	if (strcmp(key, "tls") == 0) {
		if ((i = routes_name_index(tls_names, N_NAMES(tls_names), v)) < 0)
			routes_error(c, "tls=%s: expected none, opportunistic or required", v);
		else
			r->tls = (enum route_tls)i;
	} else if (strcmp(key, "auth") == 0 || strcmp(key, "via") == 0) {
		if (!routes_name_valid(v))
			routes_error(c, "%s=%s: a name of letters, digits, '.', '_', '-'", key, v);
		else
			routes_set_str(c, key[0] == 'a' ? &r->auth : &r->via, key, v);
	} else if (strcmp(key, "ca") == 0) {
		if (*v == '\0')
			routes_error(c, "ca= needs a file");
		else
			routes_set_str(c, &r->ca, key, v);
	} else if (strcmp(key, "fingerprint") == 0) {
		if (r->fingerprint || (r->fingerprint = fingerprint_parse(v)) == NULL)
			routes_error(c, "fingerprint=%s: expected 64 hex digits (SHA-256), once",
				     v);
	} else if (strcmp(key, "port") == 0) {
		if (c->port_given || routes_parse_port(v, &r->port) < 0)
			routes_error(c, "port=%s: expected 1 to 65535, given once", v);
		c->port_given = 1;
	} else
		routes_error(c, "unknown option '%s' (tls, auth, via, ca, fingerprint, port)", key);
}

/* The target word of a smarthost, smtp or lmtp route: 0, or -1 (reported). */
static int routes_parse_target(struct route_ctx *c, struct route *r, const struct strlist *w)
{
	const char *tn = type_names[r->type];

	if (w->n < 2 || strchr(w->v[1], '=')) {
		if (r->type == ROUTE_LMTP)
			routes_error(c, "lmtp needs a target: lmtp unix:/path or lmtp host[:port]");
		else
			routes_error(c, "%s needs a host: %s host[:port]", tn, tn);
		return -1;
	}
	if (r->type == ROUTE_LMTP && strncmp(w->v[1], "unix:", 5) == 0)
		routes_parse_unix(c, r, w->v[1]);
	else
		routes_parse_hostport(c, r, w->v[1]);
	return 0;
}

/* Words after the type: the host or socket, then options. */
static void routes_parse_words(struct route_ctx *c, struct route *r, const struct strlist *w)
{
	size_t i = 1;

	if (r->type == ROUTE_SMARTHOST || r->type == ROUTE_SMTP || r->type == ROUTE_LMTP) {
		if (routes_parse_target(c, r, w) < 0)
			return;
		i++;
	}
	for (; i < w->n; i++) {
		char *eq = strchr(w->v[i], '=');
		if (r->type == ROUTE_LOCAL || r->type == ROUTE_HOLD) {
			routes_error(c, "'%s': a %s route takes no host or options", w->v[i],
				     type_names[r->type]);
			return;
		}
		if (r->path) {
			routes_error(c, "'%s': an lmtp unix: route takes no options", w->v[i]);
			return;
		}
		if (eq == NULL) {
			routes_error(c, "'%s': expected option=value", w->v[i]);
			continue;
		}
		*eq = '\0';
		routes_option(c, r, w->v[i], eq + 1);
	}
}

/* "*", "example.org" or ".example.org". */
static int routes_domain_valid(const char *d)
{
	if (strcmp(d, "*") == 0)
		return 1;
	if (d[0] == '.')
		d++;
	return smtp_addr_domain_valid(d, strlen(d));
}

static void routes_route_free(struct route *r)
{
	free(r->domain);
	free(r->host);
	free(r->path);
	free(r->auth);
	free(r->via);
	free(r->ca);
	free(r->fingerprint);
	memset(r, 0, sizeof(*r));
}

static const struct route *routes_find_exact(const struct routes *rt, const char *domain)
{
	for (size_t i = 0; i < rt->n; i++)
		if (strcasecmp(rt->v[i].domain, domain) == 0)
			return &rt->v[i];
	return NULL;
}

static void routes_check_domain(struct route_ctx *c, const struct routes *rt, const char *domain)
{
	const struct route *dup;

	if (!routes_domain_valid(domain))
		routes_error(c, "'%s' is not *, a domain or .domain", domain);
	else if ((dup = routes_find_exact(rt, domain)) != NULL)
		routes_error(c, "given twice, first at line %d", dup->line);
}

int routes_parse_line(struct routes *rt, const char *path, int line, const char *domain,
		      const char *value, struct buf *err)
{
	struct route_ctx c = {.path = path, .line = line, .domain = domain, .err = err};
	struct route r = {.port = ROUTE_DEFAULT_PORT, .line = line};
	struct strlist w = {0};
	int t;

	routes_check_domain(&c, rt, domain);
	strlist_split(&w, value);
	if (w.n == 0 || (t = routes_name_index(type_names, N_NAMES(type_names), w.v[0])) < 0) {
		routes_error(&c,
			     "'%s' is not a route type (smarthost, mx, local, hold, lmtp, smtp)",
			     w.n ? w.v[0] : "");
		goto out;
	}
	r.type = (enum route_type)t;
	if (r.type == ROUTE_LMTP)
		r.port = ROUTE_LMTP_PORT;
	routes_parse_words(&c, &r, &w);
	if (r.type == ROUTE_LMTP && r.host && r.port == 25)
		routes_error(&c, "lmtp on port 25: LMTP must not use SMTP's port (RFC 2033)");
	if (c.n_errors)
		goto out;
	r.domain = xstrdup(domain);
	for (char *p = r.domain; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	rt->v = xrealloc(rt->v, (rt->n + 1) * sizeof(*rt->v));
	rt->v[rt->n++] = r;
	memset(&r, 0, sizeof(r));
out:
	routes_route_free(&r);
	strlist_free(&w);
	return c.n_errors;
}

/* --- credentials ---------------------------------------------------------- */

static void routes_auth_add(struct routes *rt, const char *name, const char *user,
			    const char *password)
{
	rt->auth = xrealloc(rt->auth, (rt->n_auth + 1) * sizeof(*rt->auth));
	rt->auth[rt->n_auth++] =
	    (struct auth_cred){xstrdup(name), xstrdup(user), xstrdup(password)};
}

/* Ends the word at s and returns the start of the next one ("" at the end). */
static char *routes_next_word(char *s)
{
	s += strcspn(s, " \t");
	if (*s == '\0')
		return s;
	*s++ = '\0';
	return s + strspn(s, " \t");
}

/* One "NAME USER PASSWORD" line; returns 1 on a problem (reported). */
static int routes_auth_line(struct routes *rt, const char *path, int line, char *s, struct buf *err)
{
	char *name, *user, *pass, *end;

	s += strspn(s, " \t");
	end = s + strlen(s);
	while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (*s == '\0' || *s == '#')
		return 0;
	name = s;
	user = routes_next_word(name);
	pass = routes_next_word(user);
	if (*user == '\0' || *pass == '\0' || !routes_name_valid(name)) {
		buf_printf(err, "%s:%d: expected 'NAME USER PASSWORD'\n", path, line);
		return 1;
	}
	if (routes_auth(rt, name)) {
		buf_printf(err, "%s:%d: credentials %s given twice\n", path, line, name);
		return 1;
	}
	routes_auth_add(rt, name, user, pass);
	return 0;
}

/* Reads path; cfg (may be NULL: strict) says whether a file group or
 * others may access is only a warning, appended to warn. */
static int routes_auth_read(struct routes *rt, const char *path, const struct config *cfg,
			    struct buf *err, struct buf *warn)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int n = 0, errors;

	if (f == NULL) {
		buf_printf(err, "%s: auth_file: cannot open: %s\n", path, strerror(errno));
		return 1;
	}
	if ((errors = config_check_secret(cfg, "auth_file", path, fileno(f), "passwords", err,
					  warn)) > 0)
		goto out;
	while (getline(&line, &cap, f) >= 0)
		errors += routes_auth_line(rt, path, ++n, line, err);
out:
	if (line) {
		explicit_bzero(line, cap);
		free(line);
	}
	fclose(f);
	return errors;
}

int routes_auth_load(struct routes *rt, const char *path, struct buf *err)
{
	struct buf warn = BUF_INIT;
	int errors = routes_auth_read(rt, path, NULL, err, &warn);

	buf_free(&warn);
	return errors;
}

const struct auth_cred *routes_auth(const struct routes *rt, const char *name)
{
	for (size_t i = 0; rt && i < rt->n_auth; i++)
		if (strcmp(rt->auth[i].name, name) == 0)
			return &rt->auth[i];
	return NULL;
}

/* auth_file relative to the directory of the configuration file. */
static char *routes_auth_path(const char *auth_file, const char *cfg_path)
{
	const char *slash = cfg_path ? strrchr(cfg_path, '/') : NULL;

	if (auth_file[0] == '/' || slash == NULL)
		return xstrdup(auth_file);
	return xasprintf("%.*s/%s", (int)(slash - cfg_path), cfg_path, auth_file);
}

int routes_finish(struct config *cfg, struct buf *err)
{
	struct routes *rt = cfg->routes;
	const char *cfg_path = cfg->path;
	int errors = 0, have_file = cfg->auth_file && *cfg->auth_file;
	struct buf where = BUF_INIT, e = BUF_INIT, w = BUF_INIT;

	if (cfg->public_only)
		return 0; /* a local user's sendmail: the credentials are not theirs */
	if (have_file) {
		char *path = routes_auth_path(cfg->auth_file, cfg_path);
		errors += routes_auth_read(rt, path, cfg, &e, &w);
		config_where(cfg, "auth_file", &where);
		config_prefix_lines(err, buf_cstr(&where), buf_cstr(&e));
		config_prefix_lines(&cfg->warnings, buf_cstr(&where), buf_cstr(&w));
		free(path);
	}
	for (size_t i = 0; errors == 0 && i < rt->n; i++) {
		const struct route *r = &rt->v[i];
		if (r->auth == NULL || routes_auth(rt, r->auth))
			continue;
		buf_reset(&e);
		buf_printf(&e, "%s:%d: route %s: auth=%s: %s\n", cfg_path ? cfg_path : "(config)",
			   r->line, r->domain, r->auth,
			   have_file ? "no such name in auth_file" : "needs auth_file");
		config_prefix_lines(err, "", buf_cstr(&e));
		errors++;
	}
	buf_free(&where);
	buf_free(&e);
	buf_free(&w);
	return errors;
}

void routes_free(struct routes *rt)
{
	if (rt == NULL)
		return;
	for (size_t i = 0; i < rt->n; i++)
		routes_route_free(&rt->v[i]);
	for (size_t i = 0; i < rt->n_auth; i++) {
		free(rt->auth[i].name);
		free(rt->auth[i].user);
		explicit_bzero(rt->auth[i].password, strlen(rt->auth[i].password));
		free(rt->auth[i].password);
	}
	free(rt->v);
	free(rt->auth);
	memset(rt, 0, sizeof(*rt));
}

static void routes_show_one(const struct route *r, FILE *out)
{
	fprintf(out, "%s = %s", r->domain, type_names[r->type]);
	if (r->path)
		fprintf(out, " unix:%s", r->path);
	else if (r->host)
		fprintf(out, strchr(r->host, ':') ? " [%s]:%d" : " %s:%d", r->host, r->port);
	else if (r->port != ROUTE_DEFAULT_PORT)
		fprintf(out, " port=%d", r->port);
	if (r->type != ROUTE_LOCAL && r->type != ROUTE_HOLD && r->path == NULL)
		fprintf(out, " tls=%s", tls_names[r->tls]);
	if (r->auth)
		fprintf(out, " auth=%s", r->auth);
	if (r->via)
		fprintf(out, " via=%s", r->via);
	if (r->ca)
		fprintf(out, " ca=%s", r->ca);
	if (r->fingerprint)
		fprintf(out, " fingerprint=%s", r->fingerprint);
	fputc('\n', out);
}

void routes_show(const struct routes *rt, FILE *out)
{
	if (rt == NULL || rt->n == 0)
		return;
	fprintf(out, "\n[routes]\n");
	for (size_t i = 0; i < rt->n; i++)
		routes_show_one(&rt->v[i], out);
}

/* --- lookup ------------------------------------------------------------- */

const struct route *routes_lookup(const struct routes *rt, const char *domain)
{
	const struct route *r;
	const char *dot;

	if (rt == NULL || domain == NULL)
		return NULL;
	if ((r = routes_find_exact(rt, domain)) != NULL && strcmp(domain, "*") != 0)
		return r;
	for (dot = strchr(domain, '.'); dot; dot = strchr(dot + 1, '.'))
		if ((r = routes_find_exact(rt, dot)) != NULL)
			return r;
	return routes_find_exact(rt, "*");
}
