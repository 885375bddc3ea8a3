/* data = direct: SMTP over the serial line after CONNECT. This file drives
 * the line itself (greeting, EHLO, AUTH, ATRN) and lends it to the SMTP
 * client engine (outbound mail) and then to the daemon's SMTP server (held
 * mail after ATRN) through socketpair relays, so it sees every byte: the
 * engine's QUIT is kept off the line, and the modem's NO CARRIER ends the
 * job. Invariant: a recipient changes state only on the hub's final reply
 * for it; everything unconfirmed stays queued for the next call. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "daemon/delivery.h"
#include "daemon/direct.h"
#include "daemon/event.h"
#include "daemon/outbound.h"
#include "daemon/routes.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "smtp/dsn.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_server.h"

#define DIRECT_DROP_QUIET_MS 1500 /* silence after "NO CARRIER" that means the call is gone */
#define DIRECT_REPLY_MAX     8192
#define DIRECT_HANGUP_WAIT_S 10 /* after the hub's QUIT: wait for its hang-up */

enum dstate { DS_GREET, DS_EHLO, DS_AUTH, DS_SEND, DS_ATRN, DS_RECV, DS_QUIT, DS_END };

struct direct_msg {
	struct q_env env;
	struct buf content;
	size_t *idx, nidx;
	int stored;
};

struct direct {
	struct direct_ctx ctx;
	enum dstate state;
	struct bufferevent *line; /* the tty */
	struct bufferevent *peer; /* our end of the relay to the engine or the server */
	const struct auth_cred *cred;
	int cram, plain, atrn;
	struct buf reply; /* reply lines so far */
	struct buf lbuf;  /* engine bytes not yet a full line */
	struct direct_relay rel;
	struct direct_msg *m;
	size_t nm;
	struct smtpc_msg *jobs;
	struct smtpc *c;
	struct smtp_adopted *adopted;
	unsigned n_ok, n_held, n_failed, msgs_ok;
	unsigned long long bytes_out;
	struct event *ev_end, *ev_quiet;
	int end_ok;
	char *end_text;
	int quit;      /* the adopted session saw the hub's QUIT; ends when flushed */
	int closing;   /* ... flushed: waiting for the hub to hang up */
	char tail[16]; /* last bytes from the line, for NO CARRIER across reads */
};

static void direct_step(struct direct *x, const char *what, int code, const char *text)
{
	char c[8];
	const char *kv[] = {"entry", x->ctx.entry, "code", c, NULL};

	snprintf(c, sizeof(c), "%d", code);
	event_logkv(EV_RETRIEVE_ATRN, kv, "SMTP over the line of %s: %s%s%s", x->ctx.entry, what,
		    text ? ": " : "", text ? text : "");
}

/* --- the relay's bookkeeping --------------------------------------------------- */

void direct_relay_reply(struct direct_relay *r, const char *line, size_t n)
{
	if (n >= 4 && line[3] == '-')
		return;
	r->answered++;
	if (r->data_cmd && r->answered == r->data_cmd) {
		r->data = n >= 3 && strncmp(line, "354", 3) == 0;
		r->data_cmd = 0;
	}
}

int direct_relay_client(struct direct_relay *r, struct buf *pending, const char *p, size_t n,
			struct buf *line_out)
{
	size_t off = 0;
	int quit = 0;

	buf_append(pending, p, n);
	while (off < pending->len) {
		const char *s = pending->data + off, *nl;
		size_t len;
		if (r->bdat_left) {
			len = pending->len - off < r->bdat_left ? pending->len - off
								: (size_t)r->bdat_left;
			buf_append(line_out, s, len);
			r->bdat_left -= len;
			off += len;
			continue;
		}
		if ((nl = memchr(s, '\n', pending->len - off)) == NULL)
			break;
		len = (size_t)(nl - s) + 1;
		off += len;
		if (r->data) {
			buf_append(line_out, s, len);
			if ((len == 3 && memcmp(s, ".\r\n", 3) == 0) || (len == 2 && s[0] == '.')) {
				r->data = 0;
				r->sent++;
			}
			continue;
		}
		if (len >= 4 && strncasecmp(s, "QUIT", 4) == 0 && len <= 6) {
			r->quit = quit = 1;
			continue;
		}
		r->sent++;
		if (len >= 4 && strncasecmp(s, "DATA", 4) == 0 && len <= 6)
			r->data_cmd = r->sent;
		else if (len > 5 && strncasecmp(s, "BDAT ", 5) == 0)
			r->bdat_left = strtoull(s + 5, NULL, 10);
		buf_append(line_out, s, len);
	}
	if (off) {
		memmove(pending->data, pending->data + off, pending->len - off);
		pending->len -= off;
	}
	return quit;
}

/* --- the end --------------------------------------------------------------------- */

static void direct_release(struct direct *x)
{
	if (x->adopted)
		smtp_server_adopt_forget(x->ctx.smtp, x->adopted);
	if (x->c)
		smtpc_free(x->c);
	if (x->line)
		bufferevent_free(x->line);
	if (x->peer)
		bufferevent_free(x->peer);
	if (x->ev_end)
		event_free(x->ev_end);
	if (x->ev_quiet)
		event_free(x->ev_quiet);
	for (size_t i = 0; i < x->nm; i++) {
		free(x->m[i].idx);
		q_env_free(&x->m[i].env);
		buf_free(&x->m[i].content);
	}
	free(x->m);
	free(x->jobs);
	buf_free(&x->reply);
	buf_free(&x->lbuf);
	free(x->end_text);
	free(x);
}

void direct_free(struct direct *x)
{
	if (x)
		direct_release(x);
}

void direct_stats(const struct direct *x, unsigned *msgs_out, unsigned long long *bytes_out)
{
	*msgs_out = x ? x->msgs_ok : 0;
	*bytes_out = x ? x->bytes_out : 0;
}

static void direct_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct direct *x = arg;
	void (*done)(int, const char *, void *) = x->ctx.done;
	void *darg = x->ctx.arg;
	int ok = x->end_ok;
	char *text = x->end_text;

	x->end_text = NULL;
	direct_release(x);
	done(ok, text, darg);
	free(text);
}

/* Ends the job from a timer, so done never runs inside a caller of ours. */
static void direct_end(struct direct *x, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void direct_end(struct direct *x, int ok, const char *fmt, ...)
{
	struct timeval now = {0, 0};
	struct buf t = BUF_INIT;
	va_list ap;

	if (x->state == DS_END)
		return;
	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	x->state = DS_END;
	x->end_ok = ok;
	x->end_text = buf_steal(&t);
	direct_step(x, ok ? "done" : "failed", 0, x->end_text);
	if (x->line)
		bufferevent_disable(x->line, EV_READ | EV_WRITE);
	if (x->peer)
		bufferevent_disable(x->peer, EV_READ | EV_WRITE);
	x->ev_end = evtimer_new(x->ctx.base, direct_end_cb, x);
	evtimer_add(x->ev_end, &now);
}

/* --- outbound results ------------------------------------------------------------ */

static void direct_rcpt_event(int id, const struct q_env *env, const struct q_rcpt *r,
			      const char *entry, const char *what)
{
	const char *kv[] = {"qid",   env->id, "rcpt",
			    r->addr, "reply", r->last_reply ? r->last_reply : "",
			    "entry", entry,   NULL};

	event_logkv(id, kv, "Message %s to %s %s (SMTP over the line of %s): %s", env->id, r->addr,
		    what, entry, r->last_reply ? r->last_reply : "");
}

/* One result into r; 1 if r failed for good. */
static int direct_apply(struct direct *x, const struct q_env *env, struct q_rcpt *r,
			const struct smtpc_rcpt_result *res)
{
	free(r->last_reply);
	r->last_reply = xstrdup(res->reply && *res->reply ? res->reply : "(no reply)");
	if (res->status == Q_OK) {
		r->state = RCPT_DELIVERED;
		x->n_ok++;
		direct_rcpt_event(EV_OUTBOUND_DELIVERED, env, r, x->ctx.entry, "delivered");
		track(TRK_SENT, env->id, env->message_id, env->sender, r->addr, r->last_reply);
		return 0;
	}
	r->attempts++;
	if (res->status == Q_PERMFAIL) {
		r->state = RCPT_FAILED;
		x->n_failed++;
		direct_rcpt_event(EV_OUTBOUND_BOUNCED, env, r, x->ctx.entry, "failed");
		track(TRK_BOUNCED, env->id, env->message_id, env->sender, r->addr, r->last_reply);
		return 1;
	}
	x->n_held++; /* stays queued for the next call */
	direct_rcpt_event(EV_OUTBOUND_DEFERRED, env, r, x->ctx.entry, "deferred");
	return 0;
}

/* Stores one message's results on its reloaded state (only pending
 * recipients change); a 5xx gets a DSN through outbound delivery. */
static void direct_store(struct direct *x, struct direct_msg *m, const struct smtpc_msg *sm)
{
	struct q_env env;
	struct dsn_rcpt *failed = xcalloc(m->nidx + 1, sizeof(*failed));
	size_t nfailed = 0;
	int done = 1;

	m->stored = 1;
	if (sm->status == Q_OK) {
		x->msgs_ok++;
		x->bytes_out += m->content.len;
	}
	memset(&env, 0, sizeof(env));
	if (queue_load(x->ctx.q, m->env.id, &env, NULL) != Q_OK)
		goto out;
	for (size_t k = 0; k < m->nidx; k++) {
		struct q_rcpt *r = m->idx[k] < env.nrcpt ? &env.rcpt[m->idx[k]] : NULL;
		struct smtpc_rcpt_result tmp = {Q_TEMPFAIL, sm->reply};
		const struct smtpc_rcpt_result *res = k < sm->nres ? &sm->res[k] : &tmp;
		if (r == NULL || r->state != RCPT_PENDING)
			continue;
		if (direct_apply(x, &env, r, res)) {
			failed[nfailed].addr = r->addr;
			failed[nfailed].action = DSN_ACTION_FAILED;
			failed[nfailed].remote_mta = x->ctx.entry;
			failed[nfailed].diagnostic = r->last_reply;
			failed[nfailed++].last_attempt = clock_now();
		}
	}
	if (nfailed && x->ctx.d && delivery_outbound(x->ctx.d))
		outbound_dsn(delivery_outbound(x->ctx.d), &env, &m->content, failed, nfailed);
	for (size_t i = 0; i < env.nrcpt; i++)
		done &= env.rcpt[i].state != RCPT_PENDING;
	if (queue_update(x->ctx.q, &env) != 0)
		event_log(EV_QUEUE_WRITE_FAILED,
			  "Cannot store the delivery state of message %s; it will be retried",
			  env.id);
	else if (done && queue_remove(x->ctx.q, env.id) != 0)
		log_warn("direct: cannot remove finished message %s", env.id);
out:
	free(failed);
	q_env_free(&env);
}

/* 1 if rcpt r goes out over this line: pending, remote, routed via the entry. */
static int direct_rcpt_ours(const struct direct *x, const struct q_rcpt *r)
{
	const char *at = strrchr(r->addr, '@');
	const struct route *rt;

	if (r->state != RCPT_PENDING || at == NULL || config_is_local_domain(x->ctx.cfg, at + 1))
		return 0;
	rt = routes_lookup(x->ctx.cfg->routes, at + 1);
	return rt && rt->type == ROUTE_SMARTHOST && rt->via && strcmp(rt->via, x->ctx.entry) == 0;
}

static int direct_scan_one(const char *id, void *arg)
{
	struct direct *x = arg;
	struct direct_msg m;

	memset(&m, 0, sizeof(m));
	if (queue_load(x->ctx.q, id, &m.env, &m.content) != Q_OK)
		goto skip;
	m.idx = xcalloc(m.env.nrcpt + 1, sizeof(size_t));
	for (size_t i = 0; i < m.env.nrcpt; i++)
		if (direct_rcpt_ours(x, &m.env.rcpt[i]))
			m.idx[m.nidx++] = i;
	if (m.nidx == 0)
		goto skip;
	x->m = xrealloc(x->m, (x->nm + 1) * sizeof(*x->m));
	x->m[x->nm++] = m;
	return 0;
skip:
	free(m.idx);
	q_env_free(&m.env);
	buf_free(&m.content);
	return 0;
}

/* --- the line -------------------------------------------------------------------- */

static void direct_send(struct direct *x, enum dstate next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void direct_send(struct direct *x, enum dstate next, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(x->line);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	x->state = next;
}

static char *direct_b64(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/* CRAM-MD5 (RFC 2195): "user hex(HMAC-MD5(password, challenge))". */
static void direct_cram(struct direct *x, const char *challenge64)
{
	unsigned char ch[512], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int n = (int)strlen(challenge64);
	struct buf ans = BUF_INIT;
	char *enc;

	if (n > 680 || (n = EVP_DecodeBlock(ch, (const unsigned char *)challenge64, n)) < 0) {
		direct_send(x, DS_AUTH, "*");
		return;
	}
	for (size_t k = strlen(challenge64); k > 0 && challenge64[k - 1] == '=' && n > 0; k--)
		n--;
	HMAC(EVP_md5(), x->cred->password, (int)strlen(x->cred->password), ch, (size_t)n, mac,
	     &maclen);
	buf_printf(&ans, "%s ", x->cred->user);
	for (unsigned i = 0; i < maclen; i++)
		buf_printf(&ans, "%02x", mac[i]);
	enc = direct_b64((const unsigned char *)ans.data, ans.len);
	direct_send(x, DS_AUTH, "%s", enc);
	explicit_bzero(ans.data, ans.len);
	buf_free(&ans);
	free(enc);
}

/* CRAM-MD5 when offered (the password never crosses the line), else PLAIN:
 * the circuit is point to point, but the hub decides whether it allows it. */
static void direct_auth(struct direct *x)
{
	size_t u, p;
	unsigned char *raw;
	char *enc;

	if (x->cram) {
		direct_send(x, DS_AUTH, "AUTH CRAM-MD5");
		return;
	}
	if (!x->plain) {
		direct_end(x, 0, "the hub offers no AUTH CRAM-MD5 or PLAIN on this port");
		return;
	}
	u = strlen(x->cred->user);
	p = strlen(x->cred->password);
	raw = xmalloc(u + p + 3);
	raw[0] = '\0';
	memcpy(raw + 1, x->cred->user, u);
	raw[u + 1] = '\0';
	memcpy(raw + u + 2, x->cred->password, p);
	enc = direct_b64(raw, u + p + 2);
	direct_send(x, DS_AUTH, "AUTH PLAIN %s", enc);
	explicit_bzero(raw, u + p + 2);
	free(raw);
	free(enc);
}

static void direct_caps(struct direct *x)
{
	char *t = xstrdup(buf_cstr(&x->reply));

	for (char *l = strtok(t, "\n"); l; l = strtok(NULL, "\n")) {
		for (char *c = l; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		x->atrn |= strcmp(l, "ATRN") == 0;
		if (strncmp(l, "AUTH ", 5) == 0) {
			x->cram |= strstr(l, " CRAM-MD5") != NULL;
			x->plain |= strstr(l, " PLAIN") != NULL;
		}
	}
	free(t);
}

static int direct_want_atrn(const struct direct *x)
{
	return strcasecmp(x->ctx.sc->retrieve, "atrn") == 0 && x->ctx.sc->atrn_domains.n;
}

static void direct_atrn(struct direct *x)
{
	struct buf d = BUF_INIT;

	if (!direct_want_atrn(x)) {
		direct_send(x, DS_QUIT, "QUIT");
		return;
	}
	for (size_t i = 0; i < x->ctx.sc->atrn_domains.n; i++)
		buf_printf(&d, "%s%s", i ? "," : "", x->ctx.sc->atrn_domains.v[i]);
	direct_send(x, DS_ATRN, "ATRN %s", buf_cstr(&d));
	buf_free(&d);
}

static void direct_outbound(struct direct *x);
static void direct_reverse(struct direct *x);

static void direct_reply(struct direct *x, int code)
{
	const char *text = buf_cstr(&x->reply);

	switch (x->state) {
	case DS_GREET:
		direct_step(x, "greeting", code, text);
		if (code != 220)
			return direct_end(x, 0, "hub greeting refused: %d %s", code, text);
		return direct_send(x, DS_EHLO, "EHLO %s", x->ctx.cfg->hostname);
	case DS_EHLO:
		if (code != 250)
			return direct_end(x, 0, "EHLO refused: %d %s", code, text);
		direct_caps(x);
		return x->cred ? direct_auth(x) : direct_outbound(x);
	case DS_AUTH:
		if (code == 334 && x->cram)
			return direct_cram(x, text);
		direct_step(x, code == 235 ? "authenticated" : "authentication refused", code,
			    text);
		if (code != 235)
			return direct_end(x, 0, "AUTH as %s refused: %d %s", x->cred->user, code,
					  text);
		return direct_outbound(x);
	case DS_ATRN:
		direct_step(x, code == 250 ? "ATRN accepted, roles reversed" : "ATRN reply", code,
			    text);
		if (code == 250)
			return direct_reverse(x);
		direct_send(x, DS_QUIT, "QUIT");
		if (code == 453)
			return direct_end(x, 1, "%u messages sent, no mail waiting (%d %s)",
					  x->msgs_ok, code, text);
		return direct_end(x, 0, "ATRN refused: %d %s", code, text);
	case DS_QUIT:
		return direct_end(x, 1, "%u messages sent; hub answered QUIT", x->msgs_ok);
	default:
		return;
	}
}

/* Replies the job reads itself (before and after the engine's turn). */
static void direct_read_replies(struct direct *x, struct evbuffer *in)
{
	size_t n;
	char *line;

	while (x->state != DS_END && x->state != DS_SEND && x->state != DS_RECV &&
	       (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		int code = n >= 3 ? atoi(line) : 0;
		int last = n < 4 || line[3] != '-';

		if (x->reply.len < DIRECT_REPLY_MAX)
			buf_printf(&x->reply, "%s%s", x->reply.len ? "\n" : "",
				   n > 4 ? line + 4 : "");
		free(line);
		if (code < 200 || code > 599)
			return direct_end(x, 0, "malformed reply on the line (modem noise?)");
		if (!last)
			continue;
		direct_reply(x, code);
		buf_reset(&x->reply);
	}
}

/* "NO CARRIER" from the modem followed by silence: the call is gone. */
static void direct_watch_carrier(struct direct *x, struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in), keep = sizeof(x->tail) - 1, tl = strlen(x->tail);
	char win[64];
	size_t take = n < 40 ? n : 40;
	struct timeval tv = {DIRECT_DROP_QUIET_MS / 1000, (DIRECT_DROP_QUIET_MS % 1000) * 1000};

	if (n == 0)
		return;
	if (!x->closing)
		evtimer_del(x->ev_quiet); /* more data: not a drop (yet) */
	memcpy(win, x->tail, tl);
	{
		struct evbuffer_ptr pos;
		evbuffer_ptr_set(in, &pos, n - take, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(in, &pos, win + tl, take);
	}
	win[tl + take] = '\0';
	for (size_t i = 0; i < tl + take; i++)
		if (win[i] == '\0')
			win[i] = ' ';
	if (strstr(win, "NO CARRIER"))
		evtimer_add(x->ev_quiet, &tv);
	tl = strlen(win);
	memcpy(x->tail, win + (tl > keep ? tl - keep : 0), tl > keep ? keep : tl);
	x->tail[tl > keep ? keep : tl] = '\0';
}

static void direct_quiet_cb(evutil_socket_t fd, short what, void *arg)
{
	struct direct *x = arg;

	if (x->closing)
		return direct_end(x, 1, "%u messages sent; held mail received, hub sent QUIT",
				  x->msgs_ok);
	direct_end(x, 0, "the line dropped (NO CARRIER) after %u messages out", x->msgs_ok);
}

static void direct_line_read_cb(struct bufferevent *bev, void *arg)
{
	struct direct *x = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	direct_watch_carrier(x, in);
	if (x->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (x->state == DS_SEND || x->state == DS_RECV) {
		struct evbuffer *out = bufferevent_get_output(x->peer);
		if (x->state == DS_SEND) {
			/* note each reply line for the relay, then pass the bytes on */
			struct evbuffer_ptr p;
			size_t len;
			char *line;
			while ((p = evbuffer_search_eol(in, NULL, &len, EVBUFFER_EOL_CRLF)).pos >=
			       0) {
				size_t ll = (size_t)p.pos + len;
				line = xmalloc(ll + 1);
				evbuffer_remove(in, line, ll);
				direct_relay_reply(&x->rel, line, (size_t)p.pos);
				evbuffer_add(out, line, ll);
				free(line);
			}
			if (x->rel.quit && x->rel.answered >= x->rel.sent) {
				x->rel.quit = 0;
				evbuffer_add_printf(out, "221 2.0.0 line kept for ATRN\r\n");
			}
			return;
		}
		evbuffer_add_buffer(out, in);
		return;
	}
	direct_read_replies(x, in);
}

static void direct_line_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct direct *x = arg;

	if (x->closing)
		return direct_quiet_cb(-1, 0, x);
	direct_end(x, 0, "the line %s after %u messages out",
		   what & BEV_EVENT_TIMEOUT ? "timed out" : "closed (carrier lost)", x->msgs_ok);
}

/* --- the engine's turn: outbound mail ------------------------------------------- */

static void direct_peer_read_cb(struct bufferevent *bev, void *arg)
{
	struct direct *x = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	struct buf out = BUF_INIT;
	char *p;

	if (x->state != DS_SEND) {
		evbuffer_add_buffer(bufferevent_get_output(x->line), in);
		return;
	}
	p = xmalloc(n + 1);
	evbuffer_remove(in, p, n);
	direct_relay_client(&x->rel, &x->lbuf, p, n, &out);
	free(p);
	if (out.len)
		bufferevent_write(x->line, out.data, out.len);
	if (x->rel.quit && x->rel.answered >= x->rel.sent) {
		x->rel.quit = 0;
		bufferevent_write(bev, "221 2.0.0 line kept for ATRN\r\n", 30);
	}
	buf_free(&out);
}

/* Waits for the hub to hang up (NO CARRIER, or the line closing) so the
 * last replies, still crossing the line at its speed, are not cut by our
 * own hang-up; at most DIRECT_HANGUP_WAIT_S. */
static void direct_recv_over(struct direct *x)
{
	struct timeval tv = {DIRECT_HANGUP_WAIT_S, 0};

	if (x->quit) {
		x->closing = 1;
		bufferevent_setcb(x->line, direct_line_read_cb, NULL, direct_line_event_cb, x);
		evtimer_add(x->ev_quiet, &tv);
	} else
		direct_end(x, 0, "the line ended before the hub's QUIT (%u messages sent)",
			   x->msgs_ok);
}

static void direct_line_drained_cb(struct bufferevent *bev, void *arg)
{
	struct direct *x = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		direct_recv_over(x);
}

/* The server's end of the relay closed: its last replies (the 250 for the
 * last message, the 221) must reach the hub before the job ends. */
static void direct_peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct direct *x = arg;

	if (x->state != DS_RECV || !(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (evbuffer_get_length(bufferevent_get_input(bev)))
		evbuffer_add_buffer(bufferevent_get_output(x->line), bufferevent_get_input(bev));
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(x->line, direct_line_read_cb, direct_line_drained_cb,
			  direct_line_event_cb, x);
	direct_line_drained_cb(x->line, x);
}

static void direct_on_msg(struct smtpc *c, struct smtpc_msg *sm, void *arg)
{
	struct direct_msg *m = sm->user;

	if (!m->stored)
		direct_store(arg, m, sm);
}

static void direct_engine_done(struct smtpc *c, const struct smtpc_session_result *r, void *arg)
{
	struct direct *x = arg;
	const char *kv[] = {"entry", x->ctx.entry, NULL};

	for (size_t i = 0; i < x->nm; i++)
		if (!x->m[i].stored && x->jobs[i].attempted)
			direct_store(x, &x->m[i], &x->jobs[i]);
	event_logkv(EV_SESSION_OUTBOUND_DONE, kv,
		    "Outbound delivery over the line of %s done: %u messages sent, %u recipients "
		    "deferred, %u failed (%s%s%s)",
		    x->ctx.entry, x->msgs_ok, x->n_held, x->n_failed, smtpc_cause_name(r->cause),
		    *r->text ? ": " : "", r->text);
	x->c = NULL;
	smtpc_free(c);
	if (x->peer) {
		bufferevent_free(x->peer);
		x->peer = NULL;
	}
	if (x->state == DS_END)
		return;
	if (r->cause != SMTPC_OK)
		return direct_end(x, 0, "outbound over the line ended: %s", r->text);
	direct_atrn(x);
	if (evbuffer_get_length(bufferevent_get_input(x->line)))
		direct_read_replies(x, bufferevent_get_input(x->line));
}

static int direct_pair(struct direct *x, evutil_socket_t *mine)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -1;
	x->peer = bufferevent_socket_new(x->ctx.base, sv[1], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(x->peer, direct_peer_read_cb, NULL, direct_peer_event_cb, x);
	bufferevent_enable(x->peer, EV_READ | EV_WRITE);
	*mine = sv[0];
	return 0;
}

static void direct_outbound(struct direct *x)
{
	struct smtpc_options opt;
	evutil_socket_t fd;

	queue_scan(x->ctx.q, direct_scan_one, x);
	if (x->nm == 0) {
		direct_step(x, "no outbound mail for the line", 0, NULL);
		return direct_atrn(x);
	}
	if (direct_pair(x, &fd) < 0)
		return direct_end(x, 0, "socketpair: %s", strerror(errno));
	x->jobs = xcalloc(x->nm + 1, sizeof(*x->jobs));
	for (size_t i = 0; i < x->nm; i++) {
		x->jobs[i].env = &x->m[i].env;
		x->jobs[i].content = &x->m[i].content;
		x->jobs[i].rcpt_idx = x->m[i].idx;
		x->jobs[i].nrcpt_idx = x->m[i].nidx;
		x->jobs[i].user = &x->m[i];
	}
	memset(&opt, 0, sizeof(opt));
	opt.helo_name = x->ctx.cfg->hostname;
	opt.tls = SMTPC_TLS_NONE; /* the relay reads the dialogue; AUTH was done above */
	x->c = smtpc_new(x->ctx.base, &opt, x->jobs, x->nm, direct_engine_done, x);
	smtpc_set_msg_cb(x->c, direct_on_msg);
	x->state = DS_SEND;
	memset(&x->rel, 0, sizeof(x->rel));
	direct_step(x, "sending outbound mail", 0, NULL);
	/* The engine expects a greeting: the hub's was read above. */
	bufferevent_write(x->peer, "220 line ready\r\n", 16);
	if (smtpc_start_fd(x->c, fd) < 0)
		direct_end(x, 0, "cannot start the SMTP client on the line");
}

/* --- the server's turn: held mail after ATRN ----------------------------------- */

static void direct_on_close(int quit, void *arg)
{
	struct direct *x = arg;

	x->adopted = NULL;
	x->quit = quit; /* the end comes when the relay is flushed */
}

static void direct_reverse(struct direct *x)
{
	evutil_socket_t fd;
	struct bufferevent *bev;
	char *peer;

	if (direct_pair(x, &fd) < 0)
		return direct_end(x, 0, "socketpair: %s", strerror(errno));
	x->state = DS_RECV;
	bev = bufferevent_socket_new(x->ctx.base, fd, BEV_OPT_CLOSE_ON_FREE);
	peer = xasprintf("line:%s", x->ctx.entry);
	x->adopted = smtp_server_adopt(x->ctx.smtp, bev, peer, 0, direct_on_close, x);
	free(peer);
	if (evbuffer_get_length(bufferevent_get_input(x->line)))
		direct_line_read_cb(x->line, x);
}

struct direct *direct_start(const struct direct_ctx *ctx, struct buf *why)
{
	struct direct *x = xcalloc(1, sizeof(*x));
	int fd = -1, t = ctx->sc->retrieve_timeout > 300 ? ctx->sc->retrieve_timeout : 300;
	struct timeval tv = {t, 0};

	x->ctx = *ctx;
	if (ctx->sc->atrn_auth)
		x->cred = routes_auth(ctx->cfg->routes, ctx->sc->atrn_auth);
	if (direct_want_atrn(x) && (x->cred == NULL || ctx->smtp == NULL)) {
		buf_puts(why, x->cred == NULL ? "atrn_auth names no credentials of auth_file"
					      : "no SMTP server to receive the held mail");
		goto fail;
	}
	if (ctx->fd < 0 || (fd = dup(ctx->fd)) < 0) {
		buf_printf(why, "no tty for the line: %s", strerror(errno));
		goto fail;
	}
	evutil_make_socket_closeonexec(fd);
	evutil_make_socket_nonblocking(fd);
	x->line = bufferevent_socket_new(ctx->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(x->line, direct_line_read_cb, NULL, direct_line_event_cb, x);
	bufferevent_set_timeouts(x->line, &tv, &tv);
	bufferevent_enable(x->line, EV_READ | EV_WRITE);
	x->ev_quiet = evtimer_new(ctx->base, direct_quiet_cb, x);
	x->state = DS_GREET;
	direct_step(x, "waiting for the hub's greeting", 0, NULL);
	return x;
fail:
	direct_release(x);
	return NULL;
}
