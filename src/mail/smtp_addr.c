/* SMTP path and ESMTP parameter parser, strictly after the RFC 5321 grammar.
 * Invariant: a path that parses has a local part <= 64 octets, a valid domain
 * or address literal <= 255 octets, and is <= 256 octets overall; no octet
 * outside printable US-ASCII ever gets through. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/xmalloc.h"
#include "mail/smtp_addr.h"

/* RFC 5322 atext. */
static int addr_is_atext(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int addr_is_letdig(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* One sub-domain label: Let-dig [Ldh-str], at most 63 octets. */
static int addr_label_valid(const char *s, size_t len)
{
	if (len == 0 || len > 63 || !addr_is_letdig(s[0]) || !addr_is_letdig(s[len - 1]))
		return 0;
	for (size_t i = 1; i + 1 < len; i++)
		if (!addr_is_letdig(s[i]) && s[i] != '-')
			return 0;
	return 1;
}

int smtp_addr_domain_valid(const char *s, size_t len)
{
	size_t start = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (!addr_label_valid(s + start, i - start))
			return 0;
		start = i + 1;
	}
	return 1;
}

/* Snum "." Snum "." Snum "." Snum, each 1-3 digits and <= 255. */
static int addr_ipv4_valid(const char *s, size_t len)
{
	int parts = 0, digits = 0, val = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] >= '0' && s[i] <= '9') {
			val = val * 10 + (s[i] - '0');
			if (++digits > 3 || val > 255)
				return 0;
			continue;
		}
		if (digits == 0 || (i < len && s[i] != '.'))
			return 0;
		parts++;
		digits = val = 0;
	}
	return parts == 4;
}

/* "[" IPv4 / "IPv6:" IPv6 "]" starting at s; *n gets its length. */
static int addr_literal_parse(const char *s, size_t *n, const char **why)
{
	const char *close = strchr(s, ']');
	char tmp[64];
	unsigned char a6[16];
	size_t len;

	*why = "bad address literal";
	if (close == NULL)
		return -1;
	len = (size_t)(close - s - 1);
	*n = len + 2;
	if (addr_ipv4_valid(s + 1, len))
		return 0;
	if (len < 5 || strncasecmp(s + 1, "IPv6:", 5) != 0 || len - 5 >= sizeof(tmp))
		return -1;
	memcpy(tmp, s + 6, len - 5);
	tmp[len - 5] = '\0';
	return inet_pton(AF_INET6, tmp, a6) == 1 ? 0 : -1;
}

/* Domain (or address literal) at s, ending at one of the stop characters. */
static int addr_domain_parse(const char *s, const char *stops, size_t *n, int *literal,
			     const char **why)
{
	size_t len;

	*literal = 0;
	if (*s == '[') {
		*literal = 1;
		return addr_literal_parse(s, n, why);
	}
	len = strcspn(s, stops);
	*n = len;
	*why = len == 0 ? "missing domain" : "bad domain";
	return smtp_addr_domain_valid(s, len) ? 0 : -1;
}

/* A-d-l ":" : "@dom,@dom:" starting at s ('@'); returns its length or -1. */
static int addr_route_parse(const char *s, size_t *n, const char **why)
{
	const char *p = s;
	size_t dn;
	int lit;

	for (;;) {
		if (*p != '@') {
			*why = "bad source route";
			return -1;
		}
		p++;
		if (addr_domain_parse(p, ",:>", &dn, &lit, why) < 0)
			return -1;
		p += dn;
		if (*p == ':')
			break;
		if (*p != ',') {
			*why = "bad source route";
			return -1;
		}
		p++;
	}
	*n = (size_t)(p + 1 - s);
	return 0;
}

/* Quoted-string local part at s ('"'); unquoted text into out. */
static int addr_quoted_parse(const char *s, size_t *n, struct buf *out, const char **why)
{
	size_t i = 1;

	*why = "bad quoted local part";
	for (;;) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"')
			break;
		if (c == '\\') {
			c = (unsigned char)s[i + 1];
			if (c < 32 || c > 126)
				return -1;
			i++;
		} else if (c < 32 || c > 126) {
			return -1;
		}
		buf_putc(out, (char)c);
		i++;
	}
	*n = i + 1;
	return 0;
}

/* Dot-string local part at s: Atom *("." Atom). */
static int addr_dotstring_parse(const char *s, size_t *n, struct buf *out, const char **why)
{
	size_t i = 0;

	*why = "bad local part";
	while (addr_is_atext((unsigned char)s[i]) || s[i] == '.') {
		if (s[i] == '.' && (i == 0 || s[i - 1] == '.'))
			return -1;
		i++;
	}
	if (i == 0 || s[i - 1] == '.')
		return -1;
	buf_append(out, s, i);
	*n = i;
	return 0;
}

/* 1 if s is a whole Dot-string, so its quotes can be dropped. */
static int addr_dot_atom(const char *s)
{
	struct buf tmp = BUF_INIT;
	const char *why;
	size_t n = 0;
	int ok = addr_dotstring_parse(s, &n, &tmp, &why) == 0 && s[n] == '\0';

	buf_free(&tmp);
	return ok;
}

static int addr_local_parse(const char *s, size_t *n, struct smtp_path *p, const char **why)
{
	struct buf local = BUF_INIT;
	int rc;

	p->quoted = s[0] == '"';
	if (p->quoted)
		rc = addr_quoted_parse(s, n, &local, why);
	else
		rc = addr_dotstring_parse(s, n, &local, why);
	if (rc == 0 && *n > SMTP_LOCAL_MAX) {
		*why = "local part too long";
		rc = -1;
	}
	if (rc == 0)
		p->local = xstrdup(buf_cstr(&local));
	buf_free(&local);
	return rc;
}

/* Mailbox "local@domain" at s; fills p->local, p->domain, p->mailbox. */
static int addr_mailbox_parse(const char *s, size_t *n, struct smtp_path *p, const char **why)
{
	size_t ln, dn;

	if (addr_local_parse(s, &ln, p, why) < 0)
		return -1;
	if (s[ln] != '@') {
		*why = "missing domain";
		return -1;
	}
	if (addr_domain_parse(s + ln + 1, ">", &dn, &p->literal, why) < 0)
		return -1;
	p->domain = xstrndup(s + ln + 1, dn);
	for (char *c = p->domain; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (p->quoted && addr_dot_atom(p->local)) /* "alice"@x is alice@x */
		p->mailbox = xasprintf("%s@%s", p->local, p->domain);
	else
		p->mailbox = xasprintf("%.*s@%s", (int)ln, s, p->domain);
	*n = ln + 1 + dn;
	return 0;
}

static int addr_path_body(const char *s, struct smtp_path *p, const char **end, const char **why)
{
	const char *q = s + 1;
	size_t n;

	if (*q == '@') {
		if (addr_route_parse(q, &n, why) < 0)
			return -1;
		p->has_route = 1;
		q += n;
	}
	if (addr_mailbox_parse(q, &n, p, why) < 0)
		return -1;
	q += n;
	if (*q != '>') {
		*why = "missing >";
		return -1;
	}
	if ((size_t)(q + 1 - s) > SMTP_PATH_MAX) {
		*why = "path too long";
		return -1;
	}
	*end = q + 1;
	return 0;
}

int smtp_path_parse(const char *s, int allow_null, struct smtp_path *p, const char **end,
		    const char **why)
{
	memset(p, 0, sizeof(*p));
	if (s[0] != '<') {
		*why = "missing <";
		return -1;
	}
	if (s[1] == '>') {
		if (!allow_null) {
			*why = "null path not allowed";
			return -1;
		}
		p->is_null = 1;
		p->mailbox = xstrdup("");
		p->local = xstrdup("");
		p->domain = xstrdup("");
		*end = s + 2;
		return 0;
	}
	if (addr_path_body(s, p, end, why) < 0) {
		smtp_path_free(p);
		return -1;
	}
	return 0;
}

void smtp_path_free(struct smtp_path *p)
{
	free(p->mailbox);
	free(p->local);
	free(p->domain);
	memset(p, 0, sizeof(*p));
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static size_t params_keyword_len(const char *s)
{
	size_t i = 0;

	if (!addr_is_letdig((unsigned char)s[0]))
		return 0;
	while (addr_is_letdig((unsigned char)s[i]) || s[i] == '-')
		i++;
	return i;
}

/* esmtp-value = 1*(%d33-60 / %d62-126) */
static size_t params_value_len(const char *s)
{
	size_t i = 0;

	while (s[i] >= 33 && s[i] <= 126 && s[i] != '=')
		i++;
	return i;
}

/* One "KEY[=VALUE]" at s; returns its length, 0 on a syntax error. */
static size_t params_one(const char *s, struct smtp_param *out)
{
	size_t kn = params_keyword_len(s), vn = 0;

	if (kn == 0)
		return 0;
	if (s[kn] == '=') {
		vn = params_value_len(s + kn + 1);
		if (vn == 0)
			return 0;
	}
	if (s[kn + (vn ? vn + 1 : 0)] != ' ' && s[kn + (vn ? vn + 1 : 0)] != '\0')
		return 0;
	out->keyword = xstrndup(s, kn);
	out->value = vn ? xstrndup(s + kn + 1, vn) : NULL;
	return kn + (vn ? vn + 1 : 0);
}

int smtp_params_parse(const char *s, struct smtp_params *out, const char **why)
{
	size_t n;

	memset(out, 0, sizeof(*out));
	if (*s != '\0' && *s != ' ') {
		*why = "garbage after address";
		return -1;
	}
	for (;;) {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			return 0;
		if (out->n == SMTP_PARAMS_MAX) {
			*why = "too many parameters";
			return -1;
		}
		n = params_one(s, &out->v[out->n]);
		if (n == 0) {
			*why = "bad parameter syntax";
			return -1;
		}
		out->n++;
		s += n;
	}
}

void smtp_params_free(struct smtp_params *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->v[i].keyword);
		free(ps->v[i].value);
	}
	memset(ps, 0, sizeof(*ps));
}

const struct smtp_param *smtp_params_get(const struct smtp_params *ps, const char *keyword)
{
	for (size_t i = 0; i < ps->n; i++)
		if (strcasecmp(ps->v[i].keyword, keyword) == 0)
			return &ps->v[i];
	return NULL;
}
