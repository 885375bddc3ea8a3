/* SMTP client protocol engine: the session runs banner -> EHLO -> STARTTLS
 * -> EHLO -> AUTH -> a planned list of transaction steps -> QUIT. Steps go
 * out until a barrier (DATA, or any command without PIPELINING) waits for
 * its reply, so MAIL/RCPT/BDAT of many messages share one write. In LMTP
 * mode LHLO replaces EHLO and the end of data takes one reply per accepted
 * recipient, in RCPT order.
 * Invariant: replies are matched to commands strictly in order (the
 * pending FIFO); a recipient is Q_OK only after its data's final 2xx. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "smtp/batch_client.h"
#include "smtp/dsn.h"
#include "smtp/smtp_client.h"
#include "smtp/tls.h"

#define SMTPC_LINE_MAX	4096	  /* longest reply line we accept */
#define SMTPC_REPLY_MAX 65536	  /* longest multi-line reply */
#define SMTPC_WRITE_MAX (1 << 20) /* bytes per write(2) */

enum phase { PH_IDLE, PH_CONNECT, PH_BANNER, PH_HELLO, PH_TLS, PH_TXN, PH_QUIT, PH_DONE };

/* Per-recipient progress. */
enum rstate { R_UNSENT, R_SENT, R_ACCEPTED, R_DONE };

/* Per-message progress. */
struct msg_rt {
	int mail;    /* 0 unknown, 1 accepted, -1 refused */
	int data_go; /* 354 received */
	int final;   /* result is final */
	int open;    /* a transaction may still be open on the server */
	int eightbit;
	int skip; /* not planned (too big, over max) */
	size_t naccepted;
	size_t lmtp_next; /* LMTP: first result index that may await its data reply */
	enum rstate *rs;
};

struct smtpc {
	struct event_base *base;
	struct smtpc_options opt;
	struct smtpc_msg *msgs;
	struct msg_rt *rt;
	size_t nmsgs;
	smtpc_done_cb done;
	smtpc_msg_cb msg_cb;
	void *arg;
	struct bufferevent *bev;
	struct event *ev_timer, *ev_done;
	SSL_CTX *ssl_ctx;
	SSL *ssl; /* owned by the filter bufferevent */
	enum phase phase;
	struct smtpc_caps caps;
	int helo_tried;
	struct smtpc_reply reply;
	struct smtpc_step *pend; /* FIFO of commands awaiting replies */
	size_t pend_head, pend_len, pend_cap;
	struct smtpc_step *steps;
	size_t nsteps, step;
	int wrote; /* output added during the current read callback */
	struct smtpc_session_result res;
	char *text, *remote_mta, *tls_info;
	struct batch_client *batch; /* XDMBATCH running on bev */
	int batch_off;		    /* tried in this session: plain SMTP now */
	long long connected_usec;   /* for res.greeting_us */
};

static void smtpc_read_cb(struct bufferevent *bev, void *arg);
static void smtpc_event_cb(struct bufferevent *bev, short what, void *arg);
static void smtpc_pump(struct smtpc *c);
static void smtpc_send_ehlo(struct smtpc *c);

/* --------------------------------------------------------------- helpers */

static int smtpc_class(int code)
{
	if (code >= 200 && code < 300)
		return Q_OK;
	if (code >= 500 && code < 600)
		return Q_PERMFAIL;
	return Q_TEMPFAIL;
}

static void smtpc_set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = xstrdup(s ? s : "");
}

static char *smtpc_dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

const char *smtpc_cause_name(enum smtpc_cause cause)
{
	static const char *const names[] = {
	    "ok",
	    "connect-failed",
	    "connect-timeout",
	    "banner-timeout",
	    "greeting-refused",
	    "helo-refused",
	    "tls-not-offered",
	    "tls-failed",
	    "auth-unavailable",
	    "auth-failed",
	    "server-shutdown",
	    "timeout",
	    "connection-lost",
	    "protocol-error",
	};

	if ((size_t)cause >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[cause];
}

/* ------------------------------------------------------- reply and caps */

int smtpc_reply_line(struct smtpc_reply *r, const char *line, size_t len)
{
	int code;

	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-'))
		goto bad;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->text.len > 0 && code != r->code)
		goto bad;
	if (r->text.len + len > SMTPC_REPLY_MAX)
		goto bad;
	r->code = code;
	if (r->text.len > 0)
		buf_putc(&r->text, '\n');
	buf_append(&r->text, line, len);
	return len > 3 && line[3] == '-' ? 0 : 1;
bad:
	buf_reset(&r->text);
	r->code = 0;
	return -1;
}

static int smtpc_keyword(const char *kw, size_t kwlen, const char *want)
{
	return strlen(want) == kwlen && strncasecmp(kw, want, kwlen) == 0;
}

/* One EHLO keyword line: "PIPELINING", "SIZE 1000", "AUTH PLAIN LOGIN". */
static void smtpc_caps_line(struct smtpc_caps *caps, const char *s, size_t len)
{
	size_t kw = strcspn(s, " =");
	const char *p;

	if (kw > len)
		kw = len;
	if (smtpc_keyword(s, kw, "PIPELINING"))
		caps->pipelining = 1;
	else if (smtpc_keyword(s, kw, "CHUNKING"))
		caps->chunking = 1;
	else if (smtpc_keyword(s, kw, "STARTTLS"))
		caps->starttls = 1;
	else if (smtpc_keyword(s, kw, "8BITMIME"))
		caps->eightbitmime = 1;
	else if (smtpc_keyword(s, kw, "DSN"))
		caps->dsn = 1;
	else if (smtpc_keyword(s, kw, "XDMBATCH") && kw < len) {
		const char *d = strstr(s + kw, "DICT=");

		caps->xdmbatch = atoi(s + kw + 1);
		caps->xdmbatch_dict = d && d < s + len ? atoi(d + 5) : 0;
	} else if (smtpc_keyword(s, kw, "SIZE")) {
		caps->has_size = 1;
		caps->size = kw < len ? strtoull(s + kw + 1, NULL, 10) : 0;
	} else if (smtpc_keyword(s, kw, "AUTH")) {
		for (p = s + kw; p < s + len;) {
			size_t n;

			p += strspn(p, " =");
			n = strcspn(p, " \n");
			if (smtpc_keyword(p, n, "PLAIN"))
				caps->auth_plain = 1;
			else if (smtpc_keyword(p, n, "LOGIN"))
				caps->auth_login = 1;
			p += n ? n : 1;
		}
	}
}

void smtpc_caps_parse(struct smtpc_caps *caps, const char *text)
{
	const char *line = text, *nl;

	memset(caps, 0, sizeof(*caps));
	for (int first = 1; line && *line; first = 0, line = nl ? nl + 1 : NULL) {
		size_t len;

		nl = strchr(line, '\n');
		len = nl ? (size_t)(nl - line) : strlen(line);
		if (!first && len > 4)
			smtpc_caps_line(caps, line + 4, len - 4);
	}
}

void smtpc_dot_stuff(struct buf *out, const char *data, size_t len)
{
	size_t i = 0;

	buf_reserve(out, len + len / 64 + 8);
	while (i < len) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (data + i)) + 1 : len - i;

		if (data[i] == '.')
			buf_putc(out, '.');
		buf_append(out, data + i, n);
		i += n;
	}
	if (len > 0 && (len < 2 || data[len - 2] != '\r' || data[len - 1] != '\n'))
		buf_puts(out, "\r\n");
	buf_puts(out, ".\r\n");
}

int smtpc_is_8bit(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)data[i] & 0x80)
			return 1;
	return 0;
}

/* ------------------------------------------------------------- results */

static size_t smtpc_env_rcpt(const struct smtpc_msg *m, size_t i)
{
	return m->rcpt_idx ? m->rcpt_idx[i] : i;
}

/* Sets the message's summary status from its recipients and reports it. */
static void smtpc_msg_final(struct smtpc *c, size_t i, const char *reply)
{
	struct smtpc_msg *m = &c->msgs[i];
	size_t ok = 0, perm = 0;

	if (c->rt[i].final)
		return;
	c->rt[i].final = 1;
	for (size_t r = 0; r < m->nres; r++) {
		ok += m->res[r].status == Q_OK;
		perm += m->res[r].status == Q_PERMFAIL;
	}
	m->status = ok == m->nres ? Q_OK : perm == m->nres ? Q_PERMFAIL : Q_TEMPFAIL;
	smtpc_set_str(&m->reply, reply);
	if (m->status == Q_OK)
		c->res.messages_ok++;
	if (c->msg_cb && m->attempted)
		c->msg_cb(c, m, c->arg);
}

static void smtpc_rcpt_set(struct smtpc *c, size_t i, size_t r, int status, const char *reply)
{
	struct smtpc_msg *m = &c->msgs[i];

	m->res[r].status = status;
	smtpc_set_str(&m->res[r].reply, reply);
	c->rt[i].rs[r] = R_DONE;
}

/* Gives every recipient of message i that has no final result yet status. */
static void smtpc_msg_settle(struct smtpc *c, size_t i, int status, const char *reply)
{
	struct smtpc_msg *m = &c->msgs[i];

	for (size_t r = 0; r < m->nres; r++)
		if (c->rt[i].rs[r] != R_DONE)
			smtpc_rcpt_set(c, i, r, status, reply);
	smtpc_msg_final(c, i, reply);
}

/* The connection is gone: what is not confirmed is deferred. */
static void smtpc_settle_all(struct smtpc *c, const char *why)
{
	char *text;

	for (size_t i = 0; i < c->nmsgs; i++) {
		if (c->rt[i].final)
			continue;
		if (c->msgs[i].data_sent)
			text = xasprintf("%s (after the message data was sent: it may have "
					 "been delivered)",
					 why);
		else
			text = xstrdup(why);
		smtpc_msg_settle(c, i, Q_TEMPFAIL, text);
		free(text);
	}
}

/* --------------------------------------------------------- session end */

static void smtpc_done_fire(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *c = arg;

	c->res.status = c->res.cause == SMTPC_OK ? Q_OK : Q_TEMPFAIL;
	c->res.text = c->text ? c->text : "";
	c->res.remote_mta = c->remote_mta ? c->remote_mta : "";
	c->res.tls_info = c->tls_info ? c->tls_info : "";
	c->done(c, &c->res, c->arg);
}

static void smtpc_close(struct smtpc *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	event_del(c->ev_timer);
}

/* Ends the session now; done runs from the event loop. */
static void smtpc_finish(struct smtpc *c)
{
	if (c->phase == PH_DONE)
		return;
	smtpc_settle_all(c, c->text ? c->text : "connection closed before the message was sent");
	smtpc_close(c);
	c->phase = PH_DONE;
	event_active(c->ev_done, EV_TIMEOUT, 0);
}

static void smtpc_vcause(struct smtpc *c, enum smtpc_cause cause, const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;

	if (c->res.cause != SMTPC_OK)
		return; /* the first cause is the real one */
	buf_vprintf(&b, fmt, ap);
	c->res.cause = cause;
	free(c->text);
	c->text = buf_steal(&b);
	log_debug("smtpc: %s: %s", smtpc_cause_name(cause), c->text);
}

/* Drops the connection at once (timeouts, 421, lost connection). */
static void smtpc_abort(struct smtpc *c, enum smtpc_cause cause, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void smtpc_abort(struct smtpc *c, enum smtpc_cause cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtpc_vcause(c, cause, fmt, ap);
	va_end(ap);
	smtpc_finish(c);
}

static void smtpc_push(struct smtpc *c, enum smtpc_cmd cmd, int msg, int rcpt);
static void smtpc_timer_arm(struct smtpc *c);

/* Gives up on the session politely: settles every message, sends QUIT. */
static void smtpc_quit_fail(struct smtpc *c, enum smtpc_cause cause, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void smtpc_quit_fail(struct smtpc *c, enum smtpc_cause cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtpc_vcause(c, cause, fmt, ap);
	va_end(ap);
	smtpc_settle_all(c, c->text);
	c->phase = PH_QUIT;
	c->pend_len = 0;
	evbuffer_add_printf(bufferevent_get_output(c->bev), "QUIT\r\n");
	c->wrote = 1;
	smtpc_push(c, SC_QUIT, -1, -1);
	smtpc_timer_arm(c);
}

/* -------------------------------------------------------------- timers */

static int smtpc_ms(int v, int dflt)
{
	return v > 0 ? v : dflt;
}

static int smtpc_cmd_timeout(const struct smtpc *c, enum smtpc_cmd cmd)
{
	const struct smtpc_timeouts *t = &c->opt.t;

	switch (cmd) {
	case SC_BANNER:
		return smtpc_ms(t->banner, 300000);
	case SC_MAIL:
		return smtpc_ms(t->mail, 300000);
	case SC_RCPT:
		return smtpc_ms(t->rcpt, 300000);
	case SC_DATA:
		return smtpc_ms(t->data_init, 120000);
	case SC_DOT:
	case SC_BDAT:
		return smtpc_ms(t->data_end, 600000);
	case SC_QUIT:
		return smtpc_ms(t->quit, 30000);
	default:
		return smtpc_ms(t->helo, 300000);
	}
}

static const char *smtpc_cmd_name(enum smtpc_cmd cmd)
{
	static const char *const names[] = {"greeting", "EHLO",	       "HELO", "STARTTLS", "AUTH",
					    "AUTH",	"AUTH",	       "RSET", "MAIL",	   "RCPT",
					    "DATA",	"end of data", "BDAT", "QUIT"};
	return names[cmd];
}

/* The command's name as sent: LMTP says LHLO where SMTP says EHLO. */
static const char *smtpc_cmd_label(const struct smtpc *c, enum smtpc_cmd cmd)
{
	return c->opt.lmtp && cmd == SC_EHLO ? "LHLO" : smtpc_cmd_name(cmd);
}

static void smtpc_timer_set(struct smtpc *c, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_add(c->ev_timer, &tv);
}

/* Arms the reply timer for the oldest command still waiting for its reply. */
/* The reply timeout of the oldest command runs from the moment everything
 * we wrote has left (RFC 5321 4.5.3.2: a slow line must not eat the 10
 * minutes of the final dot while the message is still crossing it); until
 * then the write timeout (smtp_data_block_timeout) watches the progress. */
static void smtpc_timer_arm(struct smtpc *c)
{
	if (c->phase == PH_DONE)
		return;
	if (c->pend_len == 0 || (c->bev && evbuffer_get_length(bufferevent_get_output(c->bev)))) {
		event_del(c->ev_timer);
		return;
	}
	smtpc_timer_set(c, smtpc_cmd_timeout(c, c->pend[c->pend_head].cmd));
}

/* Our output left: the oldest command's reply timeout starts now. */
static void smtpc_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtpc *c = arg;

	if (c->phase != PH_TLS && c->phase != PH_CONNECT && !evtimer_pending(c->ev_timer, NULL))
		smtpc_timer_arm(c);
}

/* 1 when every reply but QUIT's is in: the session's work is done. */
static int smtpc_only_quit_left(const struct smtpc *c)
{
	if (c->phase != PH_QUIT)
		return 0;
	return c->pend_len == 0 || (c->pend_len == 1 && c->pend[c->pend_head].cmd == SC_QUIT);
}

static void smtpc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *c = arg;
	int ms;

	switch (c->phase) {
	case PH_CONNECT:
		smtpc_abort(c, SMTPC_CONNECT_TIMEOUT, "connect timeout (%d ms)",
			    smtpc_ms(c->opt.t.connect, 60000));
		return;
	case PH_TLS:
		smtpc_abort(c, SMTPC_TLS_FAILED, "TLS handshake timeout");
		return;
	case PH_BANNER:
		smtpc_abort(c, SMTPC_BANNER_TIMEOUT, "banner timeout (no greeting in %d ms)",
			    smtpc_cmd_timeout(c, SC_BANNER));
		return;
	default:
		break;
	}
	if (smtpc_only_quit_left(c)) {
		smtpc_finish(c); /* every result is known; no 221 is fine */
		return;
	}
	ms = c->pend_len ? smtpc_cmd_timeout(c, c->pend[c->pend_head].cmd) : 0;
	smtpc_abort(c, SMTPC_TIMEOUT, "timeout waiting for the reply to %s (%d ms)",
		    c->pend_len ? smtpc_cmd_label(c, c->pend[c->pend_head].cmd) : "?", ms);
}

/* ------------------------------------------------------------- sending */

static void smtpc_push(struct smtpc *c, enum smtpc_cmd cmd, int msg, int rcpt)
{
	size_t tail;

	if (c->pend_len == c->pend_cap) {
		struct smtpc_step *n;
		size_t cap = c->pend_cap ? c->pend_cap * 2 : 16;

		n = xcalloc(cap, sizeof(*n));
		for (size_t i = 0; i < c->pend_len; i++)
			n[i] = c->pend[(c->pend_head + i) % c->pend_cap];
		free(c->pend);
		c->pend = n;
		c->pend_cap = cap;
		c->pend_head = 0;
	}
	tail = (c->pend_head + c->pend_len) % c->pend_cap;
	c->pend[tail] = (struct smtpc_step){cmd, msg, rcpt};
	c->pend_len++;
}

static struct smtpc_step smtpc_pop(struct smtpc *c)
{
	struct smtpc_step s = c->pend[c->pend_head];

	c->pend_head = (c->pend_head + 1) % c->pend_cap;
	c->pend_len--;
	return s;
}

/* Sends a command line and expects a reply to it. */
static void smtpc_cmd(struct smtpc *c, enum smtpc_cmd cmd, int msg, int rcpt, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void smtpc_cmd(struct smtpc *c, enum smtpc_cmd cmd, int msg, int rcpt, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	c->wrote = 1;
	smtpc_push(c, cmd, msg, rcpt);
}

static void smtpc_send_ehlo(struct smtpc *c)
{
	c->phase = PH_HELLO;
	smtpc_cmd(c, SC_EHLO, -1, -1, "%s %s", c->opt.lmtp ? "LHLO" : "EHLO", c->opt.helo_name);
}

static void smtpc_base64(struct buf *out, const void *data, size_t len)
{
	size_t n = 4 * ((len + 2) / 3) + 1;

	buf_reserve(out, n);
	out->len += (size_t)EVP_EncodeBlock((unsigned char *)out->data + out->len, data, (int)len);
	out->data[out->len] = '\0';
}

static void smtpc_send_b64(struct smtpc *c, enum smtpc_cmd cmd, const char *prefix,
			   const char *data, size_t len)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, prefix);
	smtpc_base64(&b, data, len);
	smtpc_cmd(c, cmd, -1, -1, "%s", buf_cstr(&b));
	buf_free(&b);
}

/* ---------------------------------------------------------- planning */

int smtpc_cmd_barrier(enum smtpc_cmd cmd, int pipelining)
{
	if (!pipelining)
		return 1;
	return cmd == SC_DATA || cmd == SC_EHLO || cmd == SC_HELO || cmd == SC_STARTTLS ||
	       cmd == SC_AUTH || cmd == SC_AUTH_USER || cmd == SC_AUTH_PASS || cmd == SC_BANNER;
}

static void smtpc_step_add(struct smtpc_step **v, size_t *n, size_t *cap, enum smtpc_cmd cmd,
			   int msg, int rcpt)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = (struct smtpc_step){cmd, msg, rcpt};
}

/* Decides whether message i goes in this session; sets its result if not. */
static int smtpc_plan_admit(struct smtpc *c, const struct smtpc_caps *caps, size_t i,
			    size_t planned)
{
	struct smtpc_msg *m = &c->msgs[i];
	char *why;

	if (m->nres == 0 || c->rt[i].final)
		return 0;
	if (caps->has_size && caps->size > 0 && m->content->len > caps->size) {
		why = xasprintf("message size %zu exceeds the server's SIZE limit of %llu: "
				"not sent",
				m->content->len, (unsigned long long)caps->size);
		smtpc_msg_settle(c, i, Q_PERMFAIL, why);
		free(why);
		return 0;
	}
	if (c->opt.max_messages && planned >= c->opt.max_messages) {
		smtpc_msg_settle(c, i, Q_TEMPFAIL,
				 "not attempted: maximum messages per connection reached");
		return 0;
	}
	return 1;
}

size_t smtpc_plan(struct smtpc *c, const struct smtpc_caps *caps, struct smtpc_step **steps)
{
	int chunking = caps->chunking && !c->opt.no_chunking;
	size_t n = 0, cap = 0, planned = 0;

	*steps = NULL;
	for (size_t i = 0; i < c->nmsgs; i++) {
		if (!smtpc_plan_admit(c, caps, i, planned)) {
			c->rt[i].skip = 1;
			continue;
		}
		if (planned++ > 0)
			smtpc_step_add(steps, &n, &cap, SC_RSET, (int)i, -1);
		smtpc_step_add(steps, &n, &cap, SC_MAIL, (int)i, -1);
		for (size_t r = 0; r < c->msgs[i].nres; r++)
			smtpc_step_add(steps, &n, &cap, SC_RCPT, (int)i, (int)r);
		if (chunking) {
			smtpc_step_add(steps, &n, &cap, SC_BDAT, (int)i, -1);
		} else {
			smtpc_step_add(steps, &n, &cap, SC_DATA, (int)i, -1);
			smtpc_step_add(steps, &n, &cap, SC_DOT, (int)i, -1);
		}
	}
	smtpc_step_add(steps, &n, &cap, SC_QUIT, -1, -1);
	return n;
}

/* ------------------------------------------------------- transactions */

/* The message before msg may have left a transaction open (RCPTs all
 * refused, DATA or BDAT refused): then RSET is needed; when its outcome is
 * not known yet (BDAT pipelined) RSET is sent anyway, costing no wait. */
static int smtpc_rset_needed(struct smtpc *c, int msg)
{
	for (int i = msg - 1; i >= 0; i--) {
		if (c->rt[i].skip)
			continue;
		if (c->rt[i].data_go) /* "." ends a transaction, whatever its reply */
			return 0;
		return !c->rt[i].final || c->rt[i].open;
	}
	return 0;
}

static void smtpc_send_mail(struct smtpc *c, int i)
{
	struct smtpc_msg *m = &c->msgs[i];
	struct buf p = BUF_INIT;

	if (c->caps.has_size)
		buf_printf(&p, " SIZE=%zu", m->content->len);
	if (c->rt[i].eightbit && c->caps.eightbitmime)
		buf_puts(&p, " BODY=8BITMIME");
	if (c->caps.dsn) { /* RFC 3461 5.2: a relay passes the DSN parameters on */
		m->dsn_passed = 1;
		if (m->env->ret == Q_RET_FULL || m->env->ret == Q_RET_HDRS)
			buf_puts(&p, m->env->ret == Q_RET_FULL ? " RET=FULL" : " RET=HDRS");
		if (m->env->envid)
			buf_printf(&p, " ENVID=%s", m->env->envid);
	}
	if (c->rt[i].eightbit && !c->caps.eightbitmime) {
		m->eightbit_unannounced = 1;
		log_info("smtpc: %s: 8-bit message sent to a server without 8BITMIME", m->env->id);
	}
	m->attempted = 1;
	c->rt[i].open = 1;
	smtpc_cmd(c, SC_MAIL, i, -1, "MAIL FROM:<%s>%s", m->env->sender, buf_cstr(&p));
	buf_free(&p);
}

static void smtpc_send_rcpt(struct smtpc *c, int i, int r)
{
	struct smtpc_msg *m = &c->msgs[i];
	const struct q_rcpt *rc = &m->env->rcpt[smtpc_env_rcpt(m, (size_t)r)];
	struct buf p = BUF_INIT;

	if (c->caps.dsn && rc->notify) {
		buf_puts(&p, " NOTIFY=");
		dsn_notify_format(rc->notify, &p);
	}
	if (c->caps.dsn && rc->orcpt)
		buf_printf(&p, " ORCPT=%s", rc->orcpt);
	c->rt[i].rs[r] = R_SENT;
	smtpc_cmd(c, SC_RCPT, i, r, "RCPT TO:<%s>%s", rc->addr, buf_cstr(&p));
	buf_free(&p);
}

static void smtpc_send_bdat(struct smtpc *c, int i)
{
	const struct buf *content = c->msgs[i].content;

	smtpc_cmd(c, SC_BDAT, i, -1, "BDAT %zu LAST", content->len);
	evbuffer_add_reference(bufferevent_get_output(c->bev), content->data, content->len, NULL,
			       NULL);
	c->msgs[i].data_sent = 1;
}

/* After 354: the data, or only "." when no recipient was accepted. */
static void smtpc_send_dot(struct smtpc *c, int i)
{
	struct buf b = BUF_INIT;

	if (!c->rt[i].data_go)
		return;
	if (c->rt[i].naccepted > 0) {
		smtpc_dot_stuff(&b, c->msgs[i].content->data, c->msgs[i].content->len);
		c->msgs[i].data_sent = 1;
	} else {
		buf_puts(&b, ".\r\n");
	}
	evbuffer_add(bufferevent_get_output(c->bev), b.data, b.len);
	buf_free(&b);
	c->wrote = 1;
	smtpc_push(c, SC_DOT, i, -1);
}

static void smtpc_emit(struct smtpc *c, const struct smtpc_step *s)
{
	switch (s->cmd) {
	case SC_RSET:
		if (smtpc_rset_needed(c, s->msg))
			smtpc_cmd(c, SC_RSET, s->msg, -1, "RSET");
		break;
	case SC_MAIL:
		smtpc_send_mail(c, s->msg);
		break;
	case SC_RCPT:
		smtpc_send_rcpt(c, s->msg, s->rcpt);
		break;
	case SC_DATA:
		smtpc_cmd(c, SC_DATA, s->msg, -1, "DATA");
		break;
	case SC_DOT:
		smtpc_send_dot(c, s->msg);
		break;
	case SC_BDAT:
		smtpc_send_bdat(c, s->msg);
		break;
	case SC_QUIT:
		c->phase = PH_QUIT;
		smtpc_cmd(c, SC_QUIT, -1, -1, "QUIT");
		break;
	default:
		panic("smtpc: step %d not plannable", s->cmd);
	}
}

static int smtpc_blocked(struct smtpc *c)
{
	int pipelining = c->caps.pipelining && !c->opt.no_pipelining;

	for (size_t k = 0; k < c->pend_len; k++)
		if (smtpc_cmd_barrier(c->pend[(c->pend_head + k) % c->pend_cap].cmd, pipelining))
			return 1;
	return 0;
}

/* Sends planned steps until one needs a reply first. */
static void smtpc_pump(struct smtpc *c)
{
	if (c->phase != PH_TXN)
		return;
	while (c->step < c->nsteps && !smtpc_blocked(c))
		smtpc_emit(c, &c->steps[c->step++]);
}

static void smtpc_batch_rcpt(void *arg, size_t i, size_t r, int status, const char *reply)
{
	smtpc_rcpt_set(arg, i, r, status, reply);
}

static void smtpc_batch_msg(void *arg, size_t i, int status, const char *reply)
{
	smtpc_msg_settle(arg, i, status, reply);
}

static void smtpc_start_txn(struct smtpc *c);

static void smtpc_result_end(void *arg, enum batch_client_end how, const char *text)
{
}

const struct batch_client_ops smtpc_result_ops = {smtpc_batch_rcpt, smtpc_batch_msg,
						  smtpc_result_end};

struct smtpc_msg *smtpc_jobs(struct smtpc *c, size_t *n)
{
	*n = c->nmsgs;
	return c->msgs;
}

void smtpc_external_end(struct smtpc *c, int ok, const char *why)
{
	if (!ok)
		smtpc_abort(c, SMTPC_CONNECTION_LOST, "%s", why);
	else
		smtpc_finish(c);
}

/* The batch is over: plain SMTP for what is left (then QUIT), or the
 * connection is gone. */
static void smtpc_batch_end(void *arg, enum batch_client_end how, const char *text)
{
	struct smtpc *c = arg;
	uint64_t wire, raw;

	batch_client_bytes(c->batch, &wire, &raw);
	log_info("smtpc: XDMBATCH %s: %llu bytes sent for %llu: %s",
		 how == BC_DONE	      ? "done"
		 : how == BC_FALLBACK ? "refused or aborted"
				      : "cut",
		 (unsigned long long)wire, (unsigned long long)raw, text);
	c->batch_off = 1;
	c->res.waits += 2;
	if (how == BC_LOST) {
		smtpc_abort(c, SMTPC_CONNECTION_LOST, "%s", text);
		batch_client_free(c->batch);
		c->batch = NULL;
		return;
	}
	batch_client_free(c->batch);
	c->batch = NULL;
	bufferevent_setcb(c->bev, smtpc_read_cb, smtpc_write_cb, smtpc_event_cb, c);
	smtpc_start_txn(c);
	smtpc_timer_arm(c);
}

/* XDMBATCH instead of MAIL/RCPT/DATA: offered, wanted, not tried yet. */
static int smtpc_batch_begin(struct smtpc *c)
{
	static const struct batch_client_ops ops = {smtpc_batch_rcpt, smtpc_batch_msg,
						    smtpc_batch_end};
	struct batch_client_options o = {.server_version = c->caps.xdmbatch,
					 .server_dict = c->caps.xdmbatch_dict,
					 .chunk = c->opt.batch_chunk,
					 .timeout_ms = smtpc_ms(c->opt.t.data_end, 600000)};
	int *skip;
	size_t planned = 0;

	if (!c->opt.batch || c->batch_off || c->caps.xdmbatch != 1 || c->opt.lmtp)
		return 0;
	skip = xcalloc(c->nmsgs ? c->nmsgs : 1, sizeof(*skip));
	for (size_t i = 0; i < c->nmsgs; i++) {
		skip[i] = !smtpc_plan_admit(c, &c->caps, i, planned);
		planned += !skip[i];
	}
	c->phase = PH_TXN;
	event_del(c->ev_timer);
	c->batch = batch_client_start(c->bev, c->msgs, c->nmsgs, skip, &o, &ops, c);
	free(skip);
	return 1;
}

static void smtpc_start_txn(struct smtpc *c)
{
	if (smtpc_batch_begin(c))
		return;
	free(c->steps);
	c->phase = PH_TXN;
	c->nsteps = smtpc_plan(c, &c->caps, &c->steps);
	c->step = 0;
	smtpc_pump(c);
}

/* ------------------------------------------------------ reply handlers */

static void smtpc_on_mail(struct smtpc *c, const struct smtpc_step *s, const char *text)
{
	struct msg_rt *rt = &c->rt[s->msg];

	if (smtpc_class(c->reply.code) == Q_OK) {
		rt->mail = 1;
		return;
	}
	rt->mail = -1;
	rt->open = 0;
	smtpc_msg_settle(c, (size_t)s->msg, smtpc_class(c->reply.code), text);
}

static void smtpc_on_rcpt(struct smtpc *c, const struct smtpc_step *s, const char *text)
{
	struct msg_rt *rt = &c->rt[s->msg];

	if (rt->mail < 0)
		return; /* answers "need MAIL": MAIL's reply decided */
	if (smtpc_class(c->reply.code) == Q_OK) {
		rt->rs[s->rcpt] = R_ACCEPTED;
		rt->naccepted++;
		return;
	}
	smtpc_rcpt_set(c, (size_t)s->msg, (size_t)s->rcpt, smtpc_class(c->reply.code), text);
}

/* The final reply for message i's data (or DATA's refusal). */
static void smtpc_on_final(struct smtpc *c, int i, const char *text)
{
	struct msg_rt *rt = &c->rt[i];
	int st = smtpc_class(c->reply.code);

	if (rt->mail < 0 || rt->final)
		return;
	if (rt->naccepted == 0) { /* all refused: the refusals stand */
		smtpc_msg_final(c, (size_t)i, text);
		return;
	}
	rt->open = st != Q_OK;
	smtpc_msg_settle(c, (size_t)i, st, text);
}

static void smtpc_on_data(struct smtpc *c, const struct smtpc_step *s, const char *text)
{
	if (c->reply.code == 354) {
		c->rt[s->msg].data_go = 1;
		return;
	}
	smtpc_on_final(c, s->msg, text);
}

static void smtpc_on_txn(struct smtpc *c, const struct smtpc_step *s, const char *text)
{
	switch (s->cmd) {
	case SC_MAIL:
		smtpc_on_mail(c, s, text);
		break;
	case SC_RCPT:
		smtpc_on_rcpt(c, s, text);
		break;
	case SC_DATA:
		smtpc_on_data(c, s, text);
		break;
	case SC_DOT:
	case SC_BDAT:
		smtpc_on_final(c, s->msg, text);
		break;
	case SC_QUIT:
		smtpc_finish(c);
		break;
	default: /* RSET */
		break;
	}
}

static void smtpc_on_banner(struct smtpc *c, const char *text)
{
	size_t n, len = strlen(text);

	if (smtpc_class(c->reply.code) != Q_OK && c->opt.early_ehlo) {
		/* the EHLO sent early must not be answered into a mail transaction */
		smtpc_abort(c, SMTPC_GREETING_REFUSED, "greeting refused: %s", text);
		return;
	}
	if (smtpc_class(c->reply.code) != Q_OK) {
		smtpc_quit_fail(c, SMTPC_GREETING_REFUSED, "greeting refused: %s", text);
		return;
	}
	c->res.peer_dialmail = len >= 15 && strcmp(text + len - 15, " ESMTP dialmail") == 0;
	if (c->connected_usec && !c->res.greeting_us) {
		long long us = clock_usec() - c->connected_usec;
		c->res.greeting_us = us > 0 ? us : 1;
	}
	text += 4 < strlen(text) ? 4 : strlen(text);
	n = strcspn(text, " \n");
	free(c->remote_mta);
	c->remote_mta = xstrndup(text, n);
	if (!c->opt.early_ehlo)
		smtpc_send_ehlo(c);
}

static void smtpc_start_auth(struct smtpc *c);
static void smtpc_start_tls(struct smtpc *c);
static void smtpc_set_write_timeout(struct smtpc *c);

/* After EHLO/HELO: STARTTLS, then AUTH, then mail. */
static void smtpc_after_hello(struct smtpc *c)
{
	if (!c->res.tls && c->opt.tls != SMTPC_TLS_NONE) {
		if (c->caps.starttls) {
			smtpc_cmd(c, SC_STARTTLS, -1, -1, "STARTTLS");
			return;
		}
		if (c->opt.tls == SMTPC_TLS_REQUIRED) {
			smtpc_quit_fail(c, SMTPC_TLS_NOT_OFFERED, "TLS required but not offered");
			return;
		}
	}
	if (c->opt.auth_user && !c->res.authenticated)
		smtpc_start_auth(c);
	else
		smtpc_start_txn(c);
}

static void smtpc_on_ehlo(struct smtpc *c, const struct smtpc_step *s, const char *text)
{
	int st = smtpc_class(c->reply.code);

	if (st == Q_OK) {
		if (s->cmd == SC_EHLO)
			smtpc_caps_parse(&c->caps, text);
		else
			memset(&c->caps, 0, sizeof(c->caps));
		if (c->opt.lmtp)
			c->caps.pipelining = 1; /* RFC 2033 4.2: LMTP implies it */
		c->res.hello_done = 1;
		c->res.chunking = c->caps.chunking;
		smtpc_after_hello(c);
	} else if (s->cmd == SC_EHLO && st == Q_PERMFAIL && !c->helo_tried && !c->opt.lmtp) {
		c->helo_tried = 1;
		smtpc_cmd(c, SC_HELO, -1, -1, "HELO %s", c->opt.helo_name);
	} else {
		smtpc_quit_fail(c, SMTPC_HELO_REFUSED, "%s refused: %s", smtpc_cmd_label(c, s->cmd),
				text);
	}
}

static void smtpc_on_starttls(struct smtpc *c, const char *text)
{
	if (c->reply.code == 220) {
		smtpc_start_tls(c);
		return;
	}
	if (c->opt.tls == SMTPC_TLS_REQUIRED) {
		smtpc_quit_fail(c, SMTPC_TLS_FAILED, "STARTTLS refused: %s", text);
		return;
	}
	c->caps.starttls = 0; /* opportunistic: go on in clear */
	smtpc_after_hello(c);
}

static void smtpc_start_auth(struct smtpc *c)
{
	const char *u = c->opt.auth_user, *p = c->opt.auth_pass ? c->opt.auth_pass : "";
	struct buf b = BUF_INIT;

	if (!c->res.tls && !c->opt.auth_plaintext_ok) {
		smtpc_quit_fail(c, SMTPC_AUTH_UNAVAILABLE, "AUTH not attempted without TLS");
		return;
	}
	if (c->caps.auth_plain) {
		buf_putc(&b, '\0');
		buf_puts(&b, u);
		buf_putc(&b, '\0');
		buf_puts(&b, p);
		smtpc_send_b64(c, SC_AUTH, "AUTH PLAIN ", b.data, b.len);
		buf_free(&b);
	} else if (c->caps.auth_login) {
		smtpc_cmd(c, SC_AUTH_USER, -1, -1, "AUTH LOGIN");
	} else {
		smtpc_quit_fail(c, SMTPC_AUTH_UNAVAILABLE,
				"the server offers no AUTH PLAIN or LOGIN");
	}
}

static void smtpc_on_auth(struct smtpc *c, const struct smtpc_step *s, const char *text)
{
	const char *p = c->opt.auth_pass ? c->opt.auth_pass : "";

	if (c->reply.code == 235 && s->cmd != SC_AUTH_USER) {
		c->res.authenticated = 1;
		smtpc_start_txn(c);
	} else if (c->reply.code == 334 && s->cmd == SC_AUTH_USER) {
		smtpc_send_b64(c, SC_AUTH_PASS, "", c->opt.auth_user, strlen(c->opt.auth_user));
	} else if (c->reply.code == 334 && s->cmd == SC_AUTH_PASS) {
		smtpc_send_b64(c, SC_AUTH, "", p, strlen(p));
	} else {
		smtpc_quit_fail(c, SMTPC_AUTH_FAILED, "authentication failed: %s", text);
	}
}

/* The first accepted recipient of message i at or after result index r,
 * or the message's nres when there is none. */
static size_t smtpc_lmtp_accepted(const struct smtpc *c, int i, size_t r)
{
	while (r < c->msgs[i].nres && c->rt[i].rs[r] != R_ACCEPTED)
		r++;
	return r;
}

/* LMTP (RFC 2033 4.2): after the data, one reply per accepted recipient,
 * in RCPT order. Takes the reply for the next one; the end-of-data command
 * leaves the FIFO with the last. 0: not such a reply (the single-reply
 * cases: no recipient accepted, MAIL refused), handled as in SMTP. */
static int smtpc_lmtp_data_reply(struct smtpc *c, const struct smtpc_step *s, const char *text)
{
	struct msg_rt *rt;
	size_t r;

	if ((s->cmd != SC_DOT && s->cmd != SC_BDAT) || s->msg < 0)
		return 0;
	rt = &c->rt[s->msg];
	if (rt->mail < 0 || rt->final || rt->naccepted == 0)
		return 0;
	r = smtpc_lmtp_accepted(c, s->msg, rt->lmtp_next);
	if (r >= c->msgs[s->msg].nres)
		return 0;
	smtpc_rcpt_set(c, (size_t)s->msg, r, smtpc_class(c->reply.code), text);
	rt->lmtp_next = r + 1;
	if (smtpc_lmtp_accepted(c, s->msg, r + 1) < c->msgs[s->msg].nres)
		return 1; /* more replies to come for this data */
	smtpc_pop(c);
	rt->open = 0; /* the data's replies end an LMTP transaction */
	smtpc_msg_final(c, (size_t)s->msg, text);
	return 1;
}

/* Dispatches a complete reply to the command at the head of the FIFO. */
static void smtpc_on_reply(struct smtpc *c)
{
	const char *text = buf_cstr(&c->reply.text);
	struct smtpc_step s;

	if (c->pend_len == 0) {
		if (c->reply.code == 421)
			smtpc_abort(c, SMTPC_SERVER_SHUTDOWN, "server closing: %s", text);
		else
			smtpc_abort(c, SMTPC_PROTOCOL_ERROR, "unexpected reply: %s", text);
		return;
	}
	s = c->pend[c->pend_head];
	if (c->reply.code == 421 && s.cmd != SC_BANNER && s.cmd != SC_QUIT) {
		smtpc_abort(c, SMTPC_SERVER_SHUTDOWN, "server closing: %s", text);
		return;
	}
	if (c->opt.lmtp && smtpc_lmtp_data_reply(c, &s, text))
		return;
	smtpc_pop(c);
	switch (s.cmd) {
	case SC_BANNER:
		smtpc_on_banner(c, text);
		break;
	case SC_EHLO:
	case SC_HELO:
		smtpc_on_ehlo(c, &s, text);
		break;
	case SC_STARTTLS:
		smtpc_on_starttls(c, text);
		break;
	case SC_AUTH:
	case SC_AUTH_USER:
	case SC_AUTH_PASS:
		smtpc_on_auth(c, &s, text);
		break;
	default:
		smtpc_on_txn(c, &s, text);
	}
}

/* ------------------------------------------------------------- reading */

/* Reads complete lines; returns 0 to go on, -1 when the session ended or
 * reading must stop (STARTTLS switched the transport). */
static int smtpc_read_lines(struct smtpc *c, struct evbuffer *in)
{
	size_t len;
	char *line;
	int rc;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		rc = smtpc_reply_line(&c->reply, line, len);
		if (rc < 0)
			smtpc_abort(c, SMTPC_PROTOCOL_ERROR, "malformed reply line: %.100s", line);
		free(line);
		if (rc == 1) {
			smtpc_on_reply(c);
			buf_reset(&c->reply.text);
		}
		if (c->phase == PH_DONE || c->phase == PH_TLS || rc < 0)
			return -1;
	}
	if (evbuffer_get_length(in) > SMTPC_LINE_MAX) {
		smtpc_abort(c, SMTPC_PROTOCOL_ERROR, "reply line too long");
		return -1;
	}
	return 0;
}

static void smtpc_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtpc *c = arg;

	c->wrote = 0;
	if (smtpc_read_lines(c, bufferevent_get_input(bev)) == 0)
		smtpc_pump(c);
	if (c->phase == PH_DONE)
		return;
	if (c->wrote)
		c->res.waits++;
	if (c->phase != PH_TLS)
		smtpc_timer_arm(c);
}

/* --------------------------------------------------------------- TLS */

/* After the handshake: verification result and pin. 0 or -1 (aborted). */
static int smtpc_tls_check(struct smtpc *c)
{
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	long vr = SSL_get_verify_result(c->ssl);
	int rc = -1;

	if (cert == NULL) {
		smtpc_abort(c, SMTPC_TLS_FAILED, "TLS: no server certificate");
		return -1;
	}
	if (c->opt.tls_verify && vr != X509_V_OK)
		smtpc_abort(c, SMTPC_TLS_FAILED, "TLS certificate verification failed: %s",
			    X509_verify_cert_error_string(vr));
	else if (c->opt.fingerprint && !tls_pin_matches(cert, c->opt.fingerprint))
		smtpc_abort(c, SMTPC_TLS_FAILED,
			    "TLS certificate fingerprint does not match the pin");
	else
		rc = 0;
	X509_free(cert);
	return rc;
}

static void smtpc_tls_up(struct smtpc *c)
{
	if (smtpc_tls_check(c) < 0)
		return;
	c->res.tls = 1;
	free(c->tls_info);
	c->res.tls_resumed = SSL_session_reused(c->ssl);
	c->tls_info = xasprintf("%s %s%s", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
				c->res.tls_resumed ? " (resumed)" : "");
	memset(&c->caps, 0, sizeof(c->caps));
	c->wrote = 0;
	c->opt.early_ehlo = 0;
	smtpc_send_ehlo(c);
	c->res.waits++;
	smtpc_timer_arm(c);
}

static SSL *smtpc_ssl_new(struct smtpc *c)
{
	SSL *ssl = SSL_new(c->ssl_ctx);

	if (ssl) {
		tls_client_name(ssl, c->opt.server_name, c->opt.tls_verify);
		tls_resume_ssl(ssl, c->opt.tls_session);
	}
	return ssl;
}

/* 220 to STARTTLS: wraps the connection in TLS (client side). */
static void smtpc_start_tls(struct smtpc *c)
{
	struct bufferevent *tb;

	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		smtpc_abort(c, SMTPC_PROTOCOL_ERROR, "data after the STARTTLS reply (injection?)");
		return;
	}
	if ((c->ssl = smtpc_ssl_new(c)) == NULL) {
		smtpc_abort(c, SMTPC_TLS_FAILED, "TLS: cannot create a session");
		return;
	}
	tb = bufferevent_openssl_filter_new(c->base, c->bev, c->ssl, BUFFEREVENT_SSL_CONNECTING,
					    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		smtpc_abort(c, SMTPC_TLS_FAILED, "TLS: cannot start the handshake");
		return;
	}
	c->bev = tb;
	c->phase = PH_TLS;
	smtpc_set_write_timeout(c);
	bufferevent_setcb(tb, smtpc_read_cb, smtpc_write_cb, smtpc_event_cb, c);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	smtpc_timer_set(c, smtpc_ms(c->opt.t.tls, 120000));
}

static void smtpc_tls_error(struct smtpc *c)
{
	char msg[256] = "handshake failed";
	unsigned long e;

	while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
		ERR_error_string_n(e, msg, sizeof(msg));
	smtpc_abort(c, SMTPC_TLS_FAILED, "TLS failure: %s", msg);
}

static int smtpc_ssl_ctx(struct smtpc *c)
{
	c->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (c->ssl_ctx == NULL)
		return -1;
	SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL); /* judged after the handshake */
	if (c->opt.tls_session)
		tls_resume_ctx(c->ssl_ctx);
	if (c->opt.ca_file)
		return SSL_CTX_load_verify_locations(c->ssl_ctx, c->opt.ca_file, NULL) == 1 ? 0
											    : -1;
	SSL_CTX_set_default_verify_paths(c->ssl_ctx);
	return 0;
}

/* ------------------------------------------------------------- events */

static void smtpc_on_connected(struct smtpc *c)
{
	if (c->phase == PH_TLS) {
		smtpc_tls_up(c);
		return;
	}
	c->phase = PH_BANNER;
	c->connected_usec = clock_usec();
	smtpc_push(c, SC_BANNER, -1, -1);
	if (c->opt.early_ehlo)
		smtpc_send_ehlo(c); /* its reply follows the greeting's */
	smtpc_timer_arm(c);
}

static void smtpc_on_eof(struct smtpc *c, short what)
{
	int err = EVUTIL_SOCKET_ERROR();

	if (smtpc_only_quit_left(c)) {
		smtpc_finish(c); /* results are known; the 221 does not matter */
		return;
	}
	if (what & BEV_EVENT_EOF)
		smtpc_abort(c, SMTPC_CONNECTION_LOST, "connection closed by the server%s",
			    c->phase == PH_BANNER ? " before the greeting" : "");
	else
		smtpc_abort(c, SMTPC_CONNECTION_LOST, "connection error: %s",
			    evutil_socket_error_to_string(err));
}

static void smtpc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtpc *c = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		smtpc_on_connected(c);
	} else if (c->phase == PH_CONNECT) {
		smtpc_abort(c, SMTPC_CONNECT_FAILED, "connect failed: %s",
			    evutil_socket_error_to_string(err));
	} else if (c->phase == PH_TLS && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
		smtpc_tls_error(c);
	} else if (what & BEV_EVENT_TIMEOUT) {
		smtpc_abort(c, SMTPC_TIMEOUT, "timeout sending data (%d ms without progress)",
			    smtpc_ms(c->opt.t.data_block, 180000));
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		smtpc_on_eof(c, what);
	}
}

/* ------------------------------------------------------------ lifetime */

static void smtpc_opt_copy(struct smtpc_options *dst, const struct smtpc_options *src)
{
	*dst = *src;
	dst->helo_name = xstrdup(src->helo_name ? src->helo_name : "localhost");
	dst->server_name = smtpc_dup(src->server_name);
	dst->ca_file = smtpc_dup(src->ca_file);
	dst->fingerprint = smtpc_dup(src->fingerprint);
	dst->tls_session = smtpc_dup(src->tls_session);
	dst->auth_user = smtpc_dup(src->auth_user);
	dst->auth_pass = smtpc_dup(src->auth_pass);
}

static void smtpc_opt_free(struct smtpc_options *o)
{
	free((char *)o->helo_name);
	free((char *)o->server_name);
	free((char *)o->ca_file);
	free((char *)o->fingerprint);
	free((char *)o->tls_session);
	free((char *)o->auth_user);
	free((char *)o->auth_pass);
}

static void smtpc_msg_init(struct smtpc *c, size_t i)
{
	struct smtpc_msg *m = &c->msgs[i];

	m->nres = m->rcpt_idx ? m->nrcpt_idx : m->env->nrcpt;
	m->res = xcalloc(m->nres ? m->nres : 1, sizeof(*m->res));
	m->status = Q_TEMPFAIL;
	m->reply = xstrdup("not attempted");
	m->attempted = m->data_sent = m->eightbit_unannounced = 0;
	for (size_t r = 0; r < m->nres; r++) {
		m->res[r].status = Q_TEMPFAIL;
		m->res[r].reply = xstrdup("not attempted");
	}
	c->rt[i].rs = xcalloc(m->nres ? m->nres : 1, sizeof(*c->rt[i].rs));
	c->rt[i].eightbit = smtpc_is_8bit(m->content->data, m->content->len);
}

struct smtpc *smtpc_new(struct event_base *base, const struct smtpc_options *opt,
			struct smtpc_msg *msgs, size_t nmsgs, smtpc_done_cb done, void *arg)
{
	struct smtpc *c = xcalloc(1, sizeof(*c));

	c->base = base;
	smtpc_opt_copy(&c->opt, opt);
	c->msgs = msgs;
	c->nmsgs = nmsgs;
	c->rt = xcalloc(nmsgs ? nmsgs : 1, sizeof(*c->rt));
	for (size_t i = 0; i < nmsgs; i++)
		smtpc_msg_init(c, i);
	c->done = done;
	c->arg = arg;
	c->ev_timer = evtimer_new(base, smtpc_timer_cb, c);
	c->ev_done = event_new(base, -1, 0, smtpc_done_fire, c);
	return c;
}

void smtpc_set_msg_cb(struct smtpc *c, smtpc_msg_cb cb)
{
	c->msg_cb = cb;
}

void smtpc_free(struct smtpc *c)
{
	if (c == NULL)
		return;
	smtpc_close(c);
	event_free(c->ev_timer);
	event_free(c->ev_done);
	if (c->ssl_ctx)
		SSL_CTX_free(c->ssl_ctx);
	for (size_t i = 0; i < c->nmsgs; i++) {
		struct smtpc_msg *m = &c->msgs[i];

		for (size_t r = 0; r < m->nres; r++)
			free(m->res[r].reply);
		free(m->res);
		free(m->reply);
		m->res = NULL;
		m->reply = NULL;
		free(c->rt[i].rs);
	}
	batch_client_free(c->batch);
	free(c->rt);
	free(c->pend);
	free(c->steps);
	buf_free(&c->reply.text);
	smtpc_opt_free(&c->opt);
	free(c->text);
	free(c->remote_mta);
	free(c->tls_info);
	free(c);
}

static void smtpc_set_write_timeout(struct smtpc *c)
{
	int ms = smtpc_ms(c->opt.t.data_block, 180000);
	struct timeval wt = {ms / 1000, (ms % 1000) * 1000};

	bufferevent_set_timeouts(c->bev, NULL, &wt);
}

/* Common start: TLS context, callbacks. Failures are reported through done. */
static int smtpc_begin(struct smtpc *c, struct bufferevent *bev, enum phase ph)
{
	c->bev = bev;
	c->phase = ph;
	bufferevent_setcb(bev, smtpc_read_cb, smtpc_write_cb, smtpc_event_cb, c);
	bufferevent_set_max_single_write(bev, SMTPC_WRITE_MAX);
	smtpc_set_write_timeout(c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (c->opt.tls != SMTPC_TLS_NONE && smtpc_ssl_ctx(c) < 0) {
		smtpc_abort(c, SMTPC_TLS_FAILED, "TLS: cannot load CA file %s",
			    c->opt.ca_file ? c->opt.ca_file : "(system)");
		return 0;
	}
	if (ph == PH_BANNER)
		smtpc_on_connected(c);
	else
		smtpc_timer_set(c, smtpc_ms(c->opt.t.connect, 60000));
	return 0;
}

int smtpc_start_bev(struct smtpc *c, struct bufferevent *bev)
{
	return smtpc_begin(c, bev, PH_BANNER);
}

int smtpc_start_fd(struct smtpc *c, evutil_socket_t fd)
{
	struct bufferevent *bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (bev == NULL) {
		evutil_closesocket(fd);
		return -1;
	}
	evutil_make_socket_nonblocking(fd);
	return smtpc_begin(c, bev, PH_BANNER);
}

/* Connects to the address; failures are reported through done. */
static int smtpc_connect_sa(struct smtpc *c, const struct sockaddr *sa, int salen)
{
	struct bufferevent *bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);

	if (bev == NULL)
		return -1;
	smtpc_begin(c, bev, PH_CONNECT);
	if (c->phase == PH_CONNECT && bufferevent_socket_connect(bev, sa, salen) < 0)
		smtpc_abort(c, SMTPC_CONNECT_FAILED, "connect failed: %s",
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	return 0;
}

int smtpc_connect_unix(struct smtpc *c, const char *path)
{
	struct sockaddr_un sun;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sun.sun_path))
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n + 1);
	return smtpc_connect_sa(c, (struct sockaddr *)&sun, (int)sizeof(sun));
}

int smtpc_connect(struct smtpc *c, const char *hostport)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	if (strncmp(hostport, "unix:", 5) == 0)
		return smtpc_connect_unix(c, hostport + 5);
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss, &sslen) < 0 ||
	    (ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_port == 0) ||
	    (ss.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&ss)->sin6_port == 0))
		return -1;
	return smtpc_connect_sa(c, (struct sockaddr *)&ss, sslen);
}
