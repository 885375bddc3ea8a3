/* Queue and state file images: what is written to disk and the strict
 * parser that decides whether a file is whole. The format is documented in
 * docs/queue-format.md; a change here is a change there (and a version bump). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "lib/xmalloc.h"
#include "queue/queue_file.h"

/* A read position in an image; lines end with LF. */
struct qf_cursor {
	const char *p;
	const char *end;
};

/* The envelope records seen so far, to find missing and repeated ones. */
enum {
	QF_SEEN_ID = 1,
	QF_SEEN_CREATED = 2,
	QF_SEEN_SENDER = 4,
	QF_SEEN_CLIENT = 8,
	QF_SEEN_HELO = 16,
	QF_SEEN_MSGID = 32,
	QF_SEEN_ENVID = 64,
	QF_SEEN_RET = 128,
};

/* DSN NOTIFY words in the order of their bits (Q_NOTIFY_*). */
static const char *const qf_notify_words[] = {"SUCCESS", "FAILURE", "DELAY", "NEVER"};
static const char *const qf_ret_words[] = {"", "FULL", "HDRS"};

/* CRC-32 is zlib's: the same values as gzip, fast, and crc32_combine lets a
 * message whose envelope is finished after its content (queue_stream_*)
 * be summed without reading its content twice. */
uint32_t queue_file_crc32(uint32_t crc, const void *data, size_t len)
{
	return (uint32_t)crc32_z(crc, data, len);
}

uint32_t queue_file_crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	return (uint32_t)crc32_combine64(crc1, crc2, (z_off64_t)len2);
}

int queue_file_value_ok(const char *s)
{
	return s && strpbrk(s, "\r\n") == NULL;
}

/* Writes "key value\n"; CR and LF in value become spaces (only used for
 * informational values such as message-id, which callers do not check). */
static void qf_put(struct buf *out, const char *key, const char *value)
{
	size_t start;

	buf_puts(out, key);
	buf_putc(out, ' ');
	start = out->len;
	buf_puts(out, value);
	for (size_t i = start; i < out->len; i++)
		if (out->data[i] == '\r' || out->data[i] == '\n')
			out->data[i] = ' ';
	buf_putc(out, '\n');
}

/* "rcpt", then its optional DSN records "notify" and "orcpt", which belong
 * to the "rcpt" record right before them. */
static void qf_put_rcpt(struct buf *out, const struct q_rcpt *r)
{
	qf_put(out, "rcpt", r->addr);
	if (r->notify) {
		buf_puts(out, "notify ");
		for (unsigned b = 0, first = 1; b < 4; b++)
			if (r->notify & (1u << b)) {
				buf_printf(out, "%s%s", first ? "" : ",", qf_notify_words[b]);
				first = 0;
			}
		buf_putc(out, '\n');
	}
	if (r->orcpt)
		qf_put(out, "orcpt", r->orcpt);
}

void queue_file_format_envelope(struct buf *out, const struct q_env *env, int size_width)
{
	buf_printf(out, "%s %d\nid %s\ncreated %lld\n", QF_MAGIC, QF_VERSION, env->id,
		   (long long)env->created);
	qf_put(out, "sender", env->sender ? env->sender : "");
	qf_put(out, "client", env->client ? env->client : "");
	if (env->helo)
		qf_put(out, "helo", env->helo);
	if (env->message_id)
		qf_put(out, "message-id", env->message_id);
	if (env->envid)
		qf_put(out, "envid", env->envid);
	if (env->ret == Q_RET_FULL || env->ret == Q_RET_HDRS)
		qf_put(out, "ret", qf_ret_words[env->ret]);
	for (size_t i = 0; i < env->nrcpt; i++)
		qf_put_rcpt(out, &env->rcpt[i]);
	buf_printf(out, "size %0*" PRIu64 "\n", size_width, env->size);
}

void queue_file_format_end(struct buf *out, uint64_t size, uint32_t crc)
{
	buf_printf(out, "\nEND %" PRIu64 " %08" PRIx32 "\n", size, crc);
}

void queue_file_format(struct buf *out, const struct q_env *env, const struct iovec *iov,
		       int iovcnt)
{
	size_t start = out->len;

	buf_reserve(out, 512 + env->size + env->nrcpt * 64);
	queue_file_format_envelope(out, env, 0);
	for (int i = 0; i < iovcnt; i++)
		buf_append(out, iov[i].iov_base, iov[i].iov_len);
	queue_file_format_end(out, env->size,
			      queue_file_crc32(0, out->data + start, out->len - start));
}

/* Next complete line (without its LF); 0 when none is left. */
static int qf_line(struct qf_cursor *c, const char **line, size_t *len)
{
	const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));

	if (nl == NULL)
		return 0;
	*line = c->p;
	*len = (size_t)(nl - c->p);
	c->p = nl + 1;
	return 1;
}

/* Strict unsigned decimal: digits only, no sign, no overflow. */
static int qf_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Splits "key value" at the first space; 0 if the line has that shape and
 * the value holds no NUL or CR. */
static int qf_split(const char *line, size_t len, size_t *klen, const char **val, size_t *vlen)
{
	const char *sp = memchr(line, ' ', len);

	if (sp == NULL || sp == line)
		return -1;
	*klen = (size_t)(sp - line);
	*val = sp + 1;
	*vlen = len - *klen - 1;
	if (memchr(*val, '\0', *vlen) || memchr(*val, '\r', *vlen))
		return -1;
	return 0;
}

static int qf_key_is(const char *key, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

/* Checks "MAGIC VERSION" on the first line. */
static int qf_magic(const char *line, size_t len, const char *magic, int version,
		    char why[QF_WHY_MAX])
{
	size_t mlen = strlen(magic);
	uint64_t v;

	if (len <= mlen || memcmp(line, magic, mlen) != 0 || line[mlen] != ' ') {
		snprintf(why, QF_WHY_MAX, "bad magic (not a %s file)", magic);
		return -1;
	}
	if (qf_u64(line + mlen + 1, len - mlen - 1, &v) < 0 || v != (uint64_t)version) {
		snprintf(why, QF_WHY_MAX, "unsupported version \"%.*s\"",
			 (int)(len - mlen - 1 > 20 ? 20 : len - mlen - 1), line + mlen + 1);
		return -1;
	}
	return 0;
}

/* Stores a single-valued string record, refusing repeats. */
static int qf_once(char **dst, unsigned *seen, unsigned bit, const char *val, size_t vlen)
{
	if (*seen & bit)
		return -1;
	*seen |= bit;
	*dst = xstrndup(val, vlen);
	return 0;
}

/* "SUCCESS,DELAY" -> bits; -1 if a word is unknown or repeated. */
static int qf_notify(const char *val, size_t vlen, unsigned *out)
{
	unsigned set = 0;
	size_t i = 0;

	while (i < vlen) {
		const char *w = val + i;
		const char *comma = memchr(w, ',', vlen - i);
		size_t n = comma ? (size_t)(comma - w) : vlen - i, b;

		for (b = 0; b < 4; b++)
			if (qf_key_is(w, n, qf_notify_words[b]))
				break;
		if (b == 4 || (set & (1u << b)))
			return -1;
		set |= 1u << b;
		i += n + (comma != NULL);
	}
	*out = set;
	return set ? 0 : -1;
}

/* The per-recipient DSN records: they belong to the last "rcpt" so far. */
static int qf_rcpt_record(struct q_env *env, const char *key, size_t klen, const char *val,
			  size_t vlen)
{
	struct q_rcpt *r = env->nrcpt ? &env->rcpt[env->nrcpt - 1] : NULL;

	if (r == NULL)
		return -1;
	if (qf_key_is(key, klen, "notify"))
		return r->notify == 0 ? qf_notify(val, vlen, &r->notify) : -1;
	if (r->orcpt)
		return -1;
	r->orcpt = xstrndup(val, vlen);
	return 0;
}

/* "FULL" or "HDRS" for the "ret" record. */
static int qf_ret(struct q_env *env, unsigned *seen, const char *val, size_t vlen)
{
	if (*seen & QF_SEEN_RET)
		return -1;
	*seen |= QF_SEEN_RET;
	for (int k = Q_RET_FULL; k <= Q_RET_HDRS; k++)
		if (qf_key_is(val, vlen, qf_ret_words[k])) {
			env->ret = k;
			return 0;
		}
	return -1;
}

/* Applies one envelope record; 1 when it was the final "size" record. */
static int qf_record(struct q_env *env, unsigned *seen, const char *line, size_t len,
		     char why[QF_WHY_MAX])
{
	size_t klen, vlen;
	const char *val;
	uint64_t n = 0;
	int rc = 0;

	if (qf_split(line, len, &klen, &val, &vlen) < 0) {
		snprintf(why, QF_WHY_MAX, "malformed envelope record");
		return -1;
	}
	if (qf_key_is(line, klen, "id")) {
		if ((*seen & QF_SEEN_ID) || vlen >= QUEUE_ID_MAX)
			rc = -1;
		*seen |= QF_SEEN_ID;
		if (rc == 0)
			memcpy(env->id, val, vlen), env->id[vlen] = '\0';
	} else if (qf_key_is(line, klen, "created")) {
		if ((*seen & QF_SEEN_CREATED) || qf_u64(val, vlen, &n) < 0 || n > INT64_MAX)
			rc = -1;
		*seen |= QF_SEEN_CREATED;
		env->created = (time_t)n;
	} else if (qf_key_is(line, klen, "sender")) {
		rc = qf_once(&env->sender, seen, QF_SEEN_SENDER, val, vlen);
	} else if (qf_key_is(line, klen, "client")) {
		rc = qf_once(&env->client, seen, QF_SEEN_CLIENT, val, vlen);
	} else if (qf_key_is(line, klen, "helo")) {
		rc = qf_once(&env->helo, seen, QF_SEEN_HELO, val, vlen);
	} else if (qf_key_is(line, klen, "message-id")) {
		rc = qf_once(&env->message_id, seen, QF_SEEN_MSGID, val, vlen);
	} else if (qf_key_is(line, klen, "envid")) {
		rc = qf_once(&env->envid, seen, QF_SEEN_ENVID, val, vlen);
	} else if (qf_key_is(line, klen, "ret")) {
		rc = qf_ret(env, seen, val, vlen);
	} else if (qf_key_is(line, klen, "notify") || qf_key_is(line, klen, "orcpt")) {
		rc = qf_rcpt_record(env, line, klen, val, vlen);
	} else if (qf_key_is(line, klen, "rcpt")) {
		char *addr = xstrndup(val, vlen);
		q_env_add_rcpt(env, addr);
		free(addr);
	} else if (qf_key_is(line, klen, "size")) {
		if (qf_u64(val, vlen, &n) < 0)
			rc = -1;
		env->size = n;
		if (rc == 0)
			return 1;
	}
	/* Other keys are ignored: a version-1 reader skips records it does not
	 * know (docs/queue-format.md), the CRC still covers them. */
	if (rc < 0)
		snprintf(why, QF_WHY_MAX, "bad or repeated \"%.*s\" record", (int)klen, line);
	return rc;
}

/* Names the first required record that is missing; 0 if all are there. */
static int qf_required(const struct q_env *env, unsigned seen, char why[QF_WHY_MAX])
{
	static const struct {
		unsigned bit;
		const char *name;
	} req[] = {{QF_SEEN_ID, "id"},
		   {QF_SEEN_CREATED, "created"},
		   {QF_SEEN_SENDER, "sender"},
		   {QF_SEEN_CLIENT, "client"}};

	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
		if (!(seen & req[i].bit)) {
			snprintf(why, QF_WHY_MAX, "missing \"%s\" record", req[i].name);
			return -1;
		}
	if (env->nrcpt == 0) {
		snprintf(why, QF_WHY_MAX, "no \"rcpt\" record");
		return -1;
	}
	return 0;
}

/* Parses "\nEND <size> <crc>\n" at p; *used is its length. */
static int qf_end_parse(const char *p, size_t n, uint64_t *size, uint32_t *crc, size_t *used)
{
	const char *e = p + n, *q, *sp;
	uint64_t v;

	if (n < 5 || memcmp(p, "\nEND ", 5) != 0)
		return -1;
	q = p + 5;
	sp = memchr(q, ' ', (size_t)(e - q));
	if (sp == NULL || qf_u64(q, (size_t)(sp - q), size) < 0)
		return -1;
	q = sp + 1;
	if (e - q < 9 || q[8] != '\n')
		return -1;
	v = 0;
	for (int i = 0; i < 8; i++) {
		char ch = q[i];
		int d = ch >= '0' && ch <= '9'	 ? ch - '0'
			: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
						 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*crc = (uint32_t)v;
	*used = (size_t)(q + 9 - p);
	return 0;
}

/* Checks the end record that must follow the content and end the file. */
static int qf_check_end(const char *data, size_t len, size_t end, uint64_t size,
			char why[QF_WHY_MAX])
{
	uint64_t esize;
	uint32_t ecrc, crc;
	size_t used;

	if (len - end < 5 || memcmp(data + end, "\nEND ", 5) != 0) {
		snprintf(why, QF_WHY_MAX, "missing end record after %" PRIu64 " content bytes",
			 size);
		return -1;
	}
	if (qf_end_parse(data + end, len - end, &esize, &ecrc, &used) < 0) {
		snprintf(why, QF_WHY_MAX, "bad or truncated end record");
		return -1;
	}
	if (esize != size) {
		snprintf(why, QF_WHY_MAX,
			 "size mismatch (envelope %" PRIu64 ", end record %" PRIu64 ")", size,
			 esize);
		return -1;
	}
	if (end + used != len) {
		snprintf(why, QF_WHY_MAX, "%zu bytes of trailing data after the end record",
			 len - end - used);
		return -1;
	}
	crc = queue_file_crc32(0, data, end);
	if (crc != ecrc) {
		snprintf(why, QF_WHY_MAX,
			 "checksum mismatch (computed %08" PRIx32 ", recorded %08" PRIx32 ")", crc,
			 ecrc);
		return -1;
	}
	return 0;
}

/* Reads the envelope records up to and including "size": 0, -1 if they are
 * damaged, -2 if the image ends before them (truncated, or a prefix). */
static int qf_header(struct qf_cursor *c, struct q_env *env, char why[QF_WHY_MAX])
{
	unsigned seen = 0;
	const char *line;
	size_t n;
	int rc;

	if (!qf_line(c, &line, &n)) {
		size_t mlen = strlen(QF_MAGIC);
		n = (size_t)(c->end - c->p);
		if (memcmp(c->p, QF_MAGIC, n < mlen ? n : mlen) != 0) {
			snprintf(why, QF_WHY_MAX, "bad magic (not a %s file)", QF_MAGIC);
			return -1;
		}
		snprintf(why, QF_WHY_MAX, "truncated header");
		return -2;
	}
	if (qf_magic(line, n, QF_MAGIC, QF_VERSION, why) < 0)
		return -1;
	do {
		if (!qf_line(c, &line, &n)) {
			snprintf(why, QF_WHY_MAX, "truncated header (no \"size\" record)");
			return -2;
		}
		rc = qf_record(env, &seen, line, n, why);
	} while (rc == 0);
	if (rc < 0)
		return -1;
	return qf_required(env, seen, why);
}

int queue_file_parse(const char *data, size_t len, struct q_env *env, size_t *content_off,
		     char why[QF_WHY_MAX])
{
	struct qf_cursor c = {data, data + len};
	size_t hdr;

	if (len == 0) {
		snprintf(why, QF_WHY_MAX, "empty file");
		return -1;
	}
	if (qf_header(&c, env, why) < 0)
		goto fail;
	hdr = (size_t)(c.p - data);
	if (env->size > len - hdr) {
		snprintf(why, QF_WHY_MAX, "truncated content (%zu of %" PRIu64 " bytes)", len - hdr,
			 env->size);
		goto fail;
	}
	if (qf_check_end(data, len, hdr + (size_t)env->size, env->size, why) < 0)
		goto fail;
	*content_off = hdr;
	return 0;
fail:
	q_env_free(env);
	return -1;
}

/* Length of the end record "\nEND <size> <crc>\n" for size content bytes. */
static uint64_t qf_end_len(uint64_t size)
{
	char tmp[64];

	return (uint64_t)snprintf(tmp, sizeof(tmp), "\nEND %" PRIu64 " %08x\n", size, 0u);
}

int queue_file_parse_envelope(const char *data, size_t len, uint64_t file_len, struct q_env *env,
			      size_t *content_off, char why[QF_WHY_MAX])
{
	struct qf_cursor c = {data, data + len};
	uint64_t rest;
	int rc;

	if (file_len == 0) {
		snprintf(why, QF_WHY_MAX, "empty file");
		return -1;
	}
	rc = qf_header(&c, env, why);
	if (rc == -2 && len < file_len) {
		q_env_free(env); /* a prefix only: the caller reads more */
		return 1;
	}
	if (rc < 0)
		goto fail;
	/* The content and end record must fill the rest of the file exactly:
	 * truncation shows without reading them; damage inside them does not. */
	rest = file_len - (uint64_t)(c.p - data);
	if ((uint64_t)(c.p - data) > file_len || env->size > rest ||
	    rest - env->size != qf_end_len(env->size)) {
		snprintf(why, QF_WHY_MAX,
			 "file length %" PRIu64 " does not match its envelope (%" PRIu64
			 " content bytes)",
			 file_len, env->size);
		goto fail;
	}
	*content_off = (size_t)(c.p - data);
	return 0;
fail:
	q_env_free(env);
	return -1;
}

static const char *const qf_state_names[] = {"pending", "delivered", "failed"};

/* Appends s with bytes below 0x20, DEL and '%' as %XX, so it fits one line. */
static void qf_escape(struct buf *out, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f || ch == '%')
			buf_printf(out, "%%%02X", ch);
		else
			buf_putc(out, (char)ch);
	}
}

static int qf_hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Reverses qf_escape; NULL if the text is not a valid escape or hides a NUL. */
static char *qf_unescape(const char *s, size_t n)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			buf_putc(&b, s[i]);
			continue;
		}
		if (i + 2 >= n)
			goto fail;
		int hi = qf_hexval(s[i + 1]), lo = qf_hexval(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			goto fail;
		buf_putc(&b, (char)(hi << 4 | lo));
		i += 2;
	}
	return buf_steal(&b);
fail:
	buf_free(&b);
	return NULL;
}

void queue_file_state_format(struct buf *out, const struct q_env *env)
{
	buf_printf(out, "%s %d\nid %s\n", QS_MAGIC, QS_VERSION, env->id);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct q_rcpt *r = &env->rcpt[i];
		unsigned st = (unsigned)r->state <= RCPT_FAILED ? (unsigned)r->state : 0;
		buf_printf(out, "rcpt %zu %s %d %lld %s\n", i, qf_state_names[st], r->attempts,
			   (long long)r->next_attempt, r->addr);
		if (r->last_reply) {
			buf_printf(out, "reply %zu ", i);
			qf_escape(out, r->last_reply);
			buf_putc(out, '\n');
		}
	}
	buf_printf(out, "END %zu\n", env->nrcpt);
}

/* Takes the next space-separated field of a state record. */
static int qf_field(const char **p, const char *end, const char **f, size_t *n)
{
	const char *sp = memchr(*p, ' ', (size_t)(end - *p));

	if (sp == NULL || sp == *p)
		return -1;
	*f = *p;
	*n = (size_t)(sp - *p);
	*p = sp + 1;
	return 0;
}

/* Parses "<idx> <rest>" and checks idx against nrcpt. */
static int qf_index(const char **p, const char *end, size_t nrcpt, size_t *idx)
{
	const char *f;
	size_t n;
	uint64_t v;

	if (qf_field(p, end, &f, &n) < 0 || qf_u64(f, n, &v) < 0 || v >= nrcpt)
		return -1;
	*idx = (size_t)v;
	return 0;
}

/* Parses "rcpt <idx> <state> <attempts> <next> <addr>" into tmp[idx]. */
static int qf_state_rcpt(const char *p, const char *end, const struct q_env *env,
			 struct q_rcpt *tmp, unsigned char *seen)
{
	const char *f;
	size_t n, idx;
	uint64_t v;
	int st;

	if (qf_index(&p, end, env->nrcpt, &idx) < 0 || seen[idx] || qf_field(&p, end, &f, &n) < 0)
		return -1;
	for (st = 0; st <= RCPT_FAILED; st++)
		if (qf_key_is(f, n, qf_state_names[st]))
			break;
	if (st > RCPT_FAILED)
		return -1;
	tmp[idx].state = (enum rcpt_state)st;
	if (qf_field(&p, end, &f, &n) < 0 || qf_u64(f, n, &v) < 0 || v > INT32_MAX)
		return -1;
	tmp[idx].attempts = (int)v;
	if (qf_field(&p, end, &f, &n) < 0 || qf_u64(f, n, &v) < 0 || v > INT64_MAX)
		return -1;
	tmp[idx].next_attempt = (time_t)v;
	if (strlen(env->rcpt[idx].addr) != (size_t)(end - p) ||
	    memcmp(env->rcpt[idx].addr, p, (size_t)(end - p)) != 0)
		return -1;
	seen[idx] = 1;
	return 0;
}

/* Parses "reply <idx> <escaped text>" into tmp[idx]. */
static int qf_state_reply(const char *p, const char *end, const struct q_env *env,
			  struct q_rcpt *tmp)
{
	size_t idx;

	if (qf_index(&p, end, env->nrcpt, &idx) < 0 || tmp[idx].last_reply)
		return -1;
	tmp[idx].last_reply = qf_unescape(p, (size_t)(end - p));
	return tmp[idx].last_reply ? 0 : -1;
}

/* Parses one state record; 1 for a correct final END record. */
static int qf_state_line(const char *line, size_t len, const struct q_env *env, struct q_rcpt *tmp,
			 unsigned char *seen)
{
	const char *end = line + len, *val;
	size_t klen, vlen;
	uint64_t v;

	if (qf_split(line, len, &klen, &val, &vlen) < 0)
		return -1;
	if (qf_key_is(line, klen, "id"))
		return strlen(env->id) == vlen && memcmp(env->id, val, vlen) == 0 ? 0 : -1;
	if (qf_key_is(line, klen, "rcpt"))
		return qf_state_rcpt(val, end, env, tmp, seen);
	if (qf_key_is(line, klen, "reply"))
		return qf_state_reply(val, end, env, tmp);
	if (qf_key_is(line, klen, "END")) {
		if (qf_u64(val, vlen, &v) < 0 || v != env->nrcpt)
			return -1;
		for (size_t i = 0; i < env->nrcpt; i++)
			if (!seen[i])
				return -1;
		return 1;
	}
	return -1;
}

static void qf_state_apply(struct q_env *env, struct q_rcpt *tmp)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct q_rcpt *r = &env->rcpt[i];
		r->state = tmp[i].state;
		r->attempts = tmp[i].attempts;
		r->next_attempt = tmp[i].next_attempt;
		free(r->last_reply);
		r->last_reply = tmp[i].last_reply;
	}
}

int queue_file_state_parse(const char *data, size_t len, struct q_env *env, char why[QF_WHY_MAX])
{
	struct qf_cursor c = {data, data + len};
	struct q_rcpt *tmp = xcalloc(env->nrcpt + 1, sizeof(*tmp));
	unsigned char *seen = xcalloc(env->nrcpt + 1, 1);
	const char *line;
	size_t n;
	int rc = 0;

	if (!qf_line(&c, &line, &n) || qf_magic(line, n, QS_MAGIC, QS_VERSION, why) < 0) {
		if (len == 0 || memchr(data, '\n', len) == NULL)
			snprintf(why, QF_WHY_MAX, "truncated or empty state file");
		goto fail;
	}
	while (rc == 0 && qf_line(&c, &line, &n))
		rc = qf_state_line(line, n, env, tmp, seen);
	if (rc != 1 || c.p != c.end) {
		snprintf(why, QF_WHY_MAX, "%s",
			 rc < 0	   ? "bad state record"
			 : rc == 0 ? "missing END record"
				   : "data after the END record");
		goto fail;
	}
	qf_state_apply(env, tmp);
	free(tmp);
	free(seen);
	return 0;
fail:
	for (size_t i = 0; i < env->nrcpt; i++)
		free(tmp[i].last_reply);
	free(tmp);
	free(seen);
	return -1;
}
