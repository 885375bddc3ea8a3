/* A message handed over by a local program and the header work of sendmail
 * -t. Input may use LF or CRLF; everything kept is CRLF (wire form) and dots
 * are never stuffed here: the queue holds unstuffed content. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/mailmsg.h"
#include "lib/xmalloc.h"

/* Drops the line end (LF, CRLF, or a CR before EOF) from a line. */
static size_t mailmsg_chomp(const char *line, size_t n)
{
	if (n > 0 && line[n - 1] == '\n')
		n--;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	return n;
}

int mailmsg_read(FILE *in, int dot_ends, uint64_t max, struct buf *out)
{
	char *line = NULL;
	size_t cap = 0;
	uint64_t kept = 0;
	ssize_t got;
	int first = 1, big = 0;

	while ((got = getline(&line, &cap, in)) > 0) {
		size_t n = mailmsg_chomp(line, (size_t)got);

		if (dot_ends && n == 1 && line[0] == '.')
			break;
		if (first && n >= 5 && memcmp(line, "From ", 5) == 0) {
			first = 0;
			continue;
		}
		first = 0;
		if (big || (max > 0 && kept + n + 2 > max)) {
			big = 1;
			continue;
		}
		buf_append(out, line, n);
		buf_append(out, "\r\n", 2);
		kept += n + 2;
	}
	free(line);
	if (ferror(in))
		return -1;
	return big;
}

/* Offset of the CRLF ending the line that starts at pos, or len. */
static size_t mailmsg_eol(const char *msg, size_t len, size_t pos)
{
	for (size_t i = pos; i + 1 < len; i++)
		if (msg[i] == '\r' && msg[i + 1] == '\n')
			return i;
	return len;
}

/* 1 if the line starts a header field: a name of printable characters
 * other than ':', optional blanks, then ':'. */
static int mailmsg_is_field(const char *line, size_t n)
{
	size_t i = 0;

	while (i < n && line[i] > 32 && line[i] < 127 && line[i] != ':')
		i++;
	if (i == 0)
		return 0;
	while (i < n && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i < n && line[i] == ':';
}

size_t mailmsg_split(const char *msg, size_t len, size_t *body)
{
	size_t pos = 0;

	while (pos < len) {
		size_t e = mailmsg_eol(msg, len, pos);
		int cont = msg[pos] == ' ' || msg[pos] == '\t';

		if (e == pos) {
			*body = e + 2 <= len ? e + 2 : len;
			return pos;
		}
		if (e == len || (cont && pos == 0) ||
		    (!cont && !mailmsg_is_field(msg + pos, e - pos)))
			break;
		pos = e + 2;
	}
	*body = pos;
	return pos;
}

/* Finds the next field of a header section at *pos: [*start, *end) covers
 * its first line and continuation lines, CRLFs included. 0 at the end. */
static int mailmsg_field_next(const char *hdr, size_t len, size_t *pos, size_t *start, size_t *end)
{
	size_t e;

	if (*pos >= len)
		return 0;
	*start = *pos;
	e = mailmsg_eol(hdr, len, *pos);
	while (e + 2 < len && (hdr[e + 2] == ' ' || hdr[e + 2] == '\t'))
		e = mailmsg_eol(hdr, len, e + 2);
	*end = e + 2 <= len ? e + 2 : len;
	*pos = *end;
	return 1;
}

/* 1 if the field text f starts with name (case-insensitive) and a colon. */
static int mailmsg_field_is(const char *f, size_t n, const char *name)
{
	size_t k = strlen(name);

	if (n <= k || strncasecmp(f, name, k) != 0)
		return 0;
	while (k < n && (f[k] == ' ' || f[k] == '\t'))
		k++;
	return k < n && f[k] == ':';
}

/* The value of field f, unfolded (line ends removed) and trimmed. */
static char *mailmsg_unfold(const char *f, size_t n)
{
	const char *colon = memchr(f, ':', n);
	struct buf b = BUF_INIT;
	size_t i = colon ? (size_t)(colon - f) + 1 : n;

	for (; i < n; i++)
		if (f[i] != '\r' && f[i] != '\n')
			buf_putc(&b, f[i]);
	buf_cstr(&b);
	while (b.len > 0 && (b.data[b.len - 1] == ' ' || b.data[b.len - 1] == '\t'))
		b.data[--b.len] = '\0';
	i = strspn(b.data, " \t");
	memmove(b.data, b.data + i, b.len - i + 1);
	return b.data;
}

int mailmsg_has_field(const char *hdr, size_t len, const char *name)
{
	size_t pos = 0, s, e;

	while (mailmsg_field_next(hdr, len, &pos, &s, &e))
		if (mailmsg_field_is(hdr + s, e - s, name))
			return 1;
	return 0;
}

char *mailmsg_field_value(const char *hdr, size_t len, const char *name)
{
	size_t pos = 0, s, e;

	while (mailmsg_field_next(hdr, len, &pos, &s, &e))
		if (mailmsg_field_is(hdr + s, e - s, name))
			return mailmsg_unfold(hdr + s, e - s);
	return NULL;
}

/* Parser state for one address list. An element is a mailbox
 * ("Name <a@b>", "a@b (comment)") or a group member. */
struct addrparse {
	struct strlist *out;
	struct buf plain; /* addr-spec text outside <> */
	struct buf angle; /* text inside <> */
	int in_angle, seen_angle, in_group, space, phrase, bad, count;
};

/* Appends a word to the current element, noticing "two words separated
 * by a blank" (a display name) outside angle brackets. */
static void addrparse_word(struct addrparse *ap, const char *w, size_t n)
{
	struct buf *b = ap->in_angle ? &ap->angle : &ap->plain;

	if (ap->space && b->len > 0 && w[0] != '.' && w[0] != '@' && b->data[b->len - 1] != '.' &&
	    b->data[b->len - 1] != '@') {
		if (ap->in_angle)
			ap->bad = 1;
		ap->phrase = 1;
	}
	buf_append(b, w, n);
	ap->space = 0;
}

/* Ends the current element and keeps its address, if it has one. */
static void addrparse_finish(struct addrparse *ap)
{
	const char *addr = NULL;

	if (ap->seen_angle) {
		addr = buf_cstr(&ap->angle);
		if (addr[0] == '@' && strchr(addr, ':'))
			addr = strrchr(addr, ':') + 1; /* source route */
	} else if (ap->plain.len > 0) {
		if (ap->phrase)
			ap->bad = 1;
		addr = buf_cstr(&ap->plain);
	}
	if (addr && *addr) {
		strlist_add(ap->out, addr);
		ap->count++;
	}
	buf_reset(&ap->plain);
	buf_reset(&ap->angle);
	ap->seen_angle = ap->phrase = ap->space = 0;
}

/* End of the quoted string, comment or domain literal whose opening
 * character is at p, honouring backslash escapes; NULL if it never closes.
 * Only comments nest. */
static const char *addrparse_skip(const char *p, char close)
{
	char open = *p;
	int depth = 1;

	for (p++; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		else if (*p == close && --depth == 0)
			return p + 1;
		else if (*p == open && open == '(')
			depth++;
	}
	return NULL;
}

/* Handles one special character of an address list; 0, or -1 if it is
 * out of place. */
static int addrparse_special(struct addrparse *ap, char c)
{
	if (c == '<') {
		if (ap->in_angle || ap->seen_angle)
			return -1;
		ap->in_angle = ap->seen_angle = 1;
		ap->space = 0;
	} else if (c == '>') {
		if (!ap->in_angle)
			return -1;
		ap->in_angle = 0;
	} else if (ap->in_angle) {
		addrparse_word(ap, &c, 1); /* "," or ":" of a source route */
	} else if (c == ',') {
		addrparse_finish(ap);
	} else if (c == ':') {
		if (ap->in_group)
			return -1;
		ap->in_group = 1; /* the group's display name is not an address */
		buf_reset(&ap->plain);
		ap->phrase = ap->space = 0;
	} else if (c == ';') {
		if (!ap->in_group)
			return -1;
		addrparse_finish(ap);
		ap->in_group = 0;
	}
	return 0;
}

static int addrparse_run(struct addrparse *ap, const char *p)
{
	while (*p) {
		const char *q;

		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			ap->space = 1;
			p++;
		} else if (*p == '(') {
			if ((q = addrparse_skip(p, ')')) == NULL)
				return -1;
			ap->space = 1;
			p = q;
		} else if (*p == '"' || *p == '[') {
			if ((q = addrparse_skip(p, *p == '[' ? ']' : '"')) == NULL)
				return -1;
			addrparse_word(ap, p, (size_t)(q - p));
			p = q;
		} else if (strchr("<>,:;", *p)) {
			if (addrparse_special(ap, *p++) < 0)
				return -1;
		} else {
			size_t n = strcspn(p, " \t\r\n()\"[<>,:;");

			addrparse_word(ap, p, n);
			p += n;
		}
	}
	if (ap->in_angle)
		return -1;
	addrparse_finish(ap);
	return ap->bad ? -1 : 0;
}

int mailmsg_addrlist(const char *value, struct strlist *out)
{
	struct addrparse ap;
	int rc;

	memset(&ap, 0, sizeof(ap));
	ap.out = out;
	rc = addrparse_run(&ap, value);
	buf_free(&ap.plain);
	buf_free(&ap.angle);
	return rc < 0 ? -1 : ap.count;
}

/* Collects the addresses of the fields in names; -1 with *bad on error. */
static int mailmsg_collect(const char *hdr, size_t len, const char *const *names,
			   struct strlist *out, const char **bad)
{
	size_t pos = 0, s, e;
	int total = 0;

	while (mailmsg_field_next(hdr, len, &pos, &s, &e)) {
		for (const char *const *n = names; *n; n++) {
			char *v;
			int got;

			if (!mailmsg_field_is(hdr + s, e - s, *n))
				continue;
			v = mailmsg_unfold(hdr + s, e - s);
			got = mailmsg_addrlist(v, out);
			free(v);
			if (got < 0) {
				*bad = *n;
				return -1;
			}
			total += got;
		}
	}
	return total;
}

int mailmsg_recipients(const char *hdr, size_t len, struct strlist *out, const char **bad)
{
	static const char *const plain[] = {"To", "Cc", "Bcc", NULL};
	static const char *const resent[] = {"Resent-To", "Resent-Cc", "Resent-Bcc", NULL};

	for (const char *const *n = resent; *n; n++)
		if (mailmsg_has_field(hdr, len, *n))
			return mailmsg_collect(hdr, len, resent, out, bad);
	return mailmsg_collect(hdr, len, plain, out, bad);
}

void mailmsg_strip_bcc(const char *hdr, size_t len, struct buf *out)
{
	size_t pos = 0, s, e;

	while (mailmsg_field_next(hdr, len, &pos, &s, &e))
		if (!mailmsg_field_is(hdr + s, e - s, "Bcc") &&
		    !mailmsg_field_is(hdr + s, e - s, "Resent-Bcc"))
			buf_append(out, hdr + s, e - s);
}

/* 1 if the local part [p, p+n) has no unquoted blanks, specials or
 * control characters and its quotes balance. */
static int mailmsg_local_valid(const char *p, size_t n)
{
	int quoted = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 32 || c == 127)
			return 0;
		if (c == '\\' && quoted && i + 1 < n)
			i++;
		else if (c == '"')
			quoted = !quoted;
		else if (!quoted && (c == ' ' || strchr("<>()[],;:@\\", c)))
			return 0;
	}
	return n > 0 && !quoted;
}

/* 1 if d is a domain name or a [literal] without blanks or specials. */
static int mailmsg_domain_valid(const char *d)
{
	size_t n = strlen(d);

	if (n == 0)
		return 0;
	if (d[0] == '[')
		return n > 2 && d[n - 1] == ']' && strcspn(d + 1, " \t[]\\") == n - 2;
	for (const char *p = d; *p; p++)
		if ((unsigned char)*p <= 32 || *p == 127 || strchr("<>()[],;:@\\\"", *p))
			return 0;
	return 1;
}

int mailmsg_addr_valid(const char *addr)
{
	const char *at = NULL;
	int quoted = 0;

	for (const char *p = addr; *p; p++) {
		if (*p == '\\' && quoted && p[1])
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '@' && !quoted)
			at = p;
	}
	return at && mailmsg_local_valid(addr, (size_t)(at - addr)) && mailmsg_domain_valid(at + 1);
}
