/* modemsim: dial attempts, the call's data path and the gateway port.
 * Each direction of the line is a FIFO of chunks with due times: a chunk leaves
 * when the wire is free (bps, 10 bits a byte) and arrives `latency` later. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "modemsim.h"

#define CALL_CONNECT_TIMEOUT 10000000 /* usec for the --connect socket */
#define CALL_OUT_MAX	     65536    /* pending bytes an end may hold */

static void call_end_close(struct modem *m, struct ms_end *e)
{
	if (e->fd >= 0) {
		close(e->fd);
		m->gen++;
	}
	e->fd = -1;
	buf_free(&e->out);
	e->off = 0;
	e->eof = e->shut = e->shut_done = false;
}

static void call_pipe_clear(struct ms_pipe *p, int relay, bool all)
{
	struct ms_chunk **pp = &p->head, *c;

	p->tail = NULL;
	while ((c = *pp) != NULL) {
		if (all || c->relay == relay) {
			*pp = c->next;
			p->bytes -= c->len - c->off;
			free(c);
		} else {
			p->tail = c;
			pp = &c->next;
		}
	}
	if (all)
		p->wire_free = 0;
}

/* Bytes of line time per chunk: about 10 ms, so data trickles as on a modem. */
static size_t call_piece(long speed)
{
	long n = speed / 1000;

	return (size_t)(n < 16 ? 16 : n > 4096 ? 4096 : n);
}

/* When a chunk can start on the wire: after the direction's previous one,
 * and on a half-duplex line after the other direction's plus the turnaround. */
static int64_t call_start(struct modem *m, struct ms_pipe *p, int64_t now)
{
	struct ms_call *c = &m->call;
	int64_t start = p->wire_free > now ? p->wire_free : now;
	int dir = p == &c->up ? 1 : 2;

	if (m->o.turnaround_ms <= 0)
		return start;
	if (c->line_free > start)
		start = c->line_free;
	if (c->line_dir && c->line_dir != dir)
		start += (int64_t)m->o.turnaround_ms * 1000;
	c->line_dir = dir;
	return start;
}

static void call_push(struct modem *m, struct ms_pipe *p, const char *data, size_t len, int relay)
{
	struct ms_call *c = &m->call;
	int64_t now = clock_usec();

	for (size_t off = 0; off < len || (len == 0 && off == 0);) {
		size_t k = len - off < call_piece(c->speed) ? len - off : call_piece(c->speed);
		struct ms_chunk *ch = xmalloc(sizeof(*ch) + k);
		int64_t start = call_start(m, p, now);

		ch->next = NULL;
		ch->relay = relay;
		ch->eof = (len == 0);
		ch->len = k;
		ch->off = 0;
		if (k)
			memcpy(ch->data, data + off, k);
		p->wire_free = start + (int64_t)k * 10 * 1000000 / c->speed;
		c->line_free = p->wire_free;
		ch->due = p->wire_free + (int64_t)m->o.latency_ms * 1000;
		if (p->tail)
			p->tail->next = ch;
		else
			p->head = ch;
		p->tail = ch;
		p->bytes += k;
		off += k;
		if (len == 0)
			break;
	}
}

/* How many bytes a direction may hold before its source must wait. */
static size_t call_limit(struct modem *m)
{
	return (size_t)(m->call.speed / 10) * (size_t)(m->o.latency_ms + 1000) / 1000 + 4096;
}

/* ---- dialing --------------------------------------------------------- */

static struct ms_outcome call_choose(struct modem *m)
{
	struct ms_outcome oc = {.kind = OC_CONNECT, .drop = -1};

	if (m->script_pos < m->o.nscript)
		return m->o.script[m->script_pos++];
	if (m->o.fail_rate > 0) {
		double r = (double)(ms_rand(&m->rng) >> 11) * 0x1.0p-53;
		if (r < m->o.fail_rate)
			return m->o.pool[ms_rand(&m->rng) % (uint64_t)m->o.npool];
	}
	return oc;
}

void call_dial(struct modem *m, const char *number)
{
	struct ms_call *c = &m->call;

	m->attempts++;
	m->since_recover++;
	c->no = m->attempts;
	snprintf(c->number, sizeof(c->number), "%s", number);
	c->oc = call_choose(m);
	c->speed = c->oc.speed ? c->oc.speed : m->o.bps;
	c->drop = profile_drop(m, c->oc.drop);
	c->tx = c->rx = 0;
	c->plus = 0;
	c->connecting = false;
	m->state = ST_DIALING;
	ms_log(m, "call %ld dialing %s", c->no, c->number);
	if (c->oc.kind == OC_WEDGE) {
		ms_log(m, "call %ld dial %s -> WEDGE (no answer until DTR drop, then ATZ)", c->no,
		       c->number);
		m->state = ST_COMMAND;
		m->wedge = WEDGE_DEAD;
		return;
	}
	if (c->oc.kind == OC_SILENT) {
		ms_log(m, "call %ld dial %s -> SILENT (no result; any key aborts)", c->no,
		       c->number);
		c->due = 0;
		return;
	}
	c->due = clock_usec() + (int64_t)(m->o.connect_delay * 1e6);
}

/* A failed attempt: result to the dialer, back to command mode. */
static void call_failed(struct modem *m, int code, const char *why)
{
	struct ms_call *c = &m->call;
	const char *res = at_result(m, code, 0);

	call_end_close(m, &c->remote);
	c->connecting = false;
	m->state = ST_COMMAND;
	ms_log(m, "call %ld dial %s -> %s%s%s%s", c->no, c->number, res, why ? " (" : "",
	       why ? why : "", why ? ")" : "");
	at_attempt_over(m);
}

void call_abort(struct modem *m, const char *why)
{
	struct ms_call *c = &m->call;

	call_end_close(m, &c->remote);
	c->connecting = false;
	m->state = ST_COMMAND;
	if (strcmp(why, "key") == 0 && c->oc.kind != OC_SILENT)
		at_result(m, RC_NO_CARRIER, 0);
	ms_log(m, "call %ld dial %s -> aborted reason=%s", c->no, c->number, why);
	at_attempt_over(m);
}

static int call_listen(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The gateway listeners of a call that is up: -1 with errno if one fails. */
static int call_listeners(struct modem *m)
{
	struct ms_call *c = &m->call;

	if (m->o.gateway_port && (c->listen_fd = call_listen(m->o.gateway_port)) < 0)
		return -1;
	if (m->o.reverse_port && (c->rlisten_fd = call_listen(m->o.reverse_port)) < 0) {
		int e = errno;
		close(c->listen_fd);
		c->listen_fd = -1;
		errno = e;
		return -1;
	}
	return 0;
}

static void call_connected(struct modem *m)
{
	struct ms_call *c = &m->call;
	const char *res;

	c->connecting = false;
	if (call_listeners(m) < 0) {
		char why[96];
		snprintf(why, sizeof(why), "gateway port %d/%d: %s", m->o.gateway_port,
			 m->o.reverse_port, strerror(errno));
		call_failed(m, RC_NO_CARRIER, why);
		return;
	}
	res = at_result(m, RC_CONNECT, c->speed);
	ms_log(m, "call %ld dial %s -> %s", c->no, c->number, res);
	if (c->drop >= 0)
		ms_log(m, "call %ld carrier will drop after %lld bytes", c->no, c->drop);
	if (m->o.gateway_port)
		ms_log(m, "call %ld gateway 127.0.0.1:%d open", c->no, m->o.gateway_port);
	if (m->o.reverse_port)
		ms_log(m, "call %ld reverse gateway 127.0.0.1:%d open", c->no, m->o.reverse_port);
	c->up.wire_free = c->down.wire_free = 0;
	c->line_free = 0;
	c->line_dir = 0;
	call_online(m);
}

static int call_socket_to(const struct sockaddr_storage *to, socklen_t len)
{
	int fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)to, len) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int call_socket(struct modem *m)
{
	return call_socket_to(&m->o.target, m->o.target_len);
}

/* The dial's time has come: the scripted or random outcome happens now. */
static void call_due(struct modem *m)
{
	struct ms_call *c = &m->call;

	c->due = 0;
	if (c->oc.kind == OC_RESULT) {
		call_failed(m, c->oc.code, NULL);
	} else if (c->oc.kind == OC_GARBAGE) {
		at_garbage(m);
		m->state = ST_COMMAND;
		ms_log(m, "call %ld dial %s -> GARBAGE", c->no, c->number);
		at_attempt_over(m);
	} else if (m->o.have_target && !m->o.gateway_port) {
		c->remote.fd = call_socket(m);
		if (c->remote.fd < 0) {
			char why[512];
			snprintf(why, sizeof(why), "connect %s: %s", m->o.target_name,
				 strerror(errno));
			call_failed(m, RC_NO_CARRIER, why);
			return;
		}
		c->connecting = true;
		c->connect_deadline = clock_usec() + CALL_CONNECT_TIMEOUT;
	} else {
		call_connected(m);
	}
}

static void call_connect_event(struct modem *m, void *arg, short revents)
{
	struct ms_call *c = &m->call;
	int err = 0;
	socklen_t len = sizeof(err);
	char why[512];

	if (getsockopt(c->remote.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0) {
		call_connected(m);
		return;
	}
	snprintf(why, sizeof(why), "connect %s: %s", m->o.target_name, strerror(err));
	call_failed(m, RC_NO_CARRIER, why);
}

/* ---- the call is up ------------------------------------------------------ */

void call_online(struct modem *m)
{
	m->state = ST_ONLINE;
	m->call.plus = 0;
	m->call.last_data = clock_usec();
}

static void call_relay_close(struct modem *m, int i, const char *why)
{
	struct ms_relay *r = &m->call.relays[i];

	if (!r->used)
		return;
	call_end_close(m, &r->client);
	call_end_close(m, &r->remote);
	call_pipe_clear(&m->call.up, i, false);
	call_pipe_clear(&m->call.down, i, false);
	r->used = r->connecting = false;
	ms_log(m, "call %ld gateway connection %d closed (%s)", m->call.no, i, why);
}

void call_hangup(struct modem *m, const char *reason)
{
	struct ms_call *c = &m->call;

	ms_log(m, "call %ld hangup reason=%s bytes_tx=%llu bytes_rx=%llu", c->no, reason, c->tx,
	       c->rx);
	for (int i = 0; i < MS_MAXRELAY; i++)
		call_relay_close(m, i, "hangup");
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		c->listen_fd = -1;
		m->gen++;
	}
	if (c->rlisten_fd >= 0) {
		close(c->rlisten_fd);
		c->rlisten_fd = -1;
		m->gen++;
	}
	call_end_close(m, &c->remote);
	call_pipe_clear(&c->up, 0, true);
	call_pipe_clear(&c->down, 0, true);
	c->plus = 0;
	m->state = ST_COMMAND;
	at_attempt_over(m);
}

/* The far end went away or the line dropped: NO CARRIER, call over. */
static void call_lost(struct modem *m, const char *reason)
{
	at_result(m, RC_NO_CARRIER, 0);
	call_hangup(m, reason);
}

/* Data typed by the dialer while online; watches for the +++ escape. */
void call_pty_data(struct modem *m, const char *data, size_t len)
{
	struct ms_call *c = &m->call;
	int64_t now = clock_usec(), guard = (int64_t)m->s[12] * 20000;
	char esc = (char)m->s[2], pend[4096 + 3];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		bool after_quiet = c->plus == 0 && now - c->last_data >= guard;
		bool in_run = c->plus > 0 && c->plus < 3 && now - c->plus_time <= guard;
		if (m->s[2] < 128 && data[i] == esc && (after_quiet || in_run)) {
			c->plus++;
			c->plus_time = now;
			continue;
		}
		for (; c->plus > 0; c->plus--)
			pend[n++] = esc;
		pend[n++] = data[i];
		c->last_data = now;
		if (n >= 4096) {
			if (!m->o.gateway_port)
				call_push(m, &c->up, pend, n, -1);
			n = 0;
		}
	}
	if (n && !m->o.gateway_port)
		call_push(m, &c->up, pend, n, -1);
}

bool call_pty_blocked(struct modem *m)
{
	return m->call.up.bytes > call_limit(m);
}

static void call_escape_timer(struct modem *m)
{
	struct ms_call *c = &m->call;
	int64_t now = clock_usec(), guard = (int64_t)m->s[12] * 20000;
	char pend[3];

	if (m->state != ST_ONLINE || c->plus == 0 || now - c->plus_time < guard)
		return;
	if (c->plus == 3) {
		c->plus = 0;
		m->state = ST_ONLINE_CMD;
		m->linelen = 0;
		ms_log(m, "call %ld escape (+++): command mode, call still up", c->no);
		at_result(m, RC_OK, 0);
		return;
	}
	/* Fewer than three: they were data after all. */
	memset(pend, m->s[2], sizeof(pend));
	if (!m->o.gateway_port)
		call_push(m, &c->up, pend, (size_t)c->plus, -1);
	c->last_data = c->plus_time;
	c->plus = 0;
}

/* ---- delivery at the far end of each direction ------------------------ */

static struct ms_end *call_dest(struct modem *m, const struct ms_chunk *ch, bool up)
{
	struct ms_call *c = &m->call;

	if (ch->relay < 0)
		return up && c->remote.fd >= 0 ? &c->remote : NULL;
	if (!c->relays[ch->relay].used)
		return NULL;
	/* A reverse relay's client is on the far side: its data goes down. */
	return up != c->relays[ch->relay].reverse ? &c->relays[ch->relay].remote
						  : &c->relays[ch->relay].client;
}

/* End of stream reached the far side of the wire. Returns false if the call ended. */
static bool call_deliver_eof(struct modem *m, struct ms_chunk *ch, bool up)
{
	struct ms_end *dest = call_dest(m, ch, up);

	if (ch->relay < 0) {
		ms_log(m, "call %ld remote closed the connection", m->call.no);
		call_lost(m, "remote");
		return false;
	}
	if (dest)
		dest->shut = true;
	return true;
}

/* Where serial data arrives: the dialer (down), the socket or the echo (up). */
static void call_deliver(struct modem *m, struct ms_chunk *ch, size_t k, bool up)
{
	struct ms_end *dest = call_dest(m, ch, up);
	const char *data = ch->data + ch->off;

	if (up)
		m->call.tx += k;
	else
		m->call.rx += k;
	if (!up && ch->relay < 0)
		ms_send(m, data, k);
	else if (dest)
		buf_append(&dest->out, data, k);
	else if (up && ch->relay < 0 && !m->o.have_target)
		call_push(m, &m->call.down, data, k, -1); /* no --connect: the far end echoes */
}

static bool call_dest_full(struct modem *m, const struct ms_chunk *ch, bool up)
{
	struct ms_end *dest = call_dest(m, ch, up);

	if (!up && ch->relay < 0)
		return m->state != ST_ONLINE || m->out.len - m->out_off > 4096;
	return dest && dest->out.len - dest->off > CALL_OUT_MAX;
}

/* Delivers every due chunk of one direction. Returns false if the call ended. */
static bool call_run_pipe(struct modem *m, struct ms_pipe *p, bool up)
{
	struct ms_call *c = &m->call;
	int64_t now = clock_usec();
	struct ms_chunk *ch;

	while ((ch = p->head) != NULL && ch->due <= now && !call_dest_full(m, ch, up)) {
		size_t k = ch->len - ch->off;
		bool drop = c->drop >= 0 && (long long)(c->tx + c->rx + k) >= c->drop;

		if (ch->eof && !call_deliver_eof(m, ch, up))
			return false;
		if (drop)
			k = (size_t)(c->drop - (long long)(c->tx + c->rx));
		call_deliver(m, ch, k, up);
		if (drop && !ch->eof) {
			ms_log(m, "call %ld carrier lost after %llu bytes", c->no, c->tx + c->rx);
			call_lost(m, "carrier");
			return false;
		}
		p->head = ch->next;
		if (!p->head)
			p->tail = NULL;
		p->bytes -= ch->len - ch->off;
		free(ch);
	}
	return true;
}

static int64_t call_next_due(struct modem *m, struct ms_pipe *p, bool up)
{
	if (!p->head || call_dest_full(m, p->head, up))
		return 0;
	return p->head->due;
}

/* ---- sockets -------------------------------------------------------------- */

/* Writes pending output; returns -1 when the peer is gone. */
static int call_end_write(struct ms_end *e)
{
	if (e->off < e->out.len) {
		ssize_t n = write(e->fd, e->out.data + e->off, e->out.len - e->off);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (n > 0)
			e->off += (size_t)n;
		if (e->off >= e->out.len) {
			buf_reset(&e->out);
			e->off = 0;
		}
	}
	if (e->shut && !e->shut_done && e->off >= e->out.len) {
		shutdown(e->fd, SHUT_WR);
		e->shut_done = true;
	}
	return 0;
}

/* Reads into a direction; returns -1 on end of stream or error. */
static int call_end_read(struct modem *m, struct ms_end *e, struct ms_pipe *p, int relay)
{
	char data[16384];
	ssize_t n = read(e->fd, data, sizeof(data));

	if (n > 0) {
		call_push(m, p, data, (size_t)n, relay);
		return 0;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	e->eof = true;
	call_push(m, p, NULL, 0, relay);
	return -1;
}

static void call_remote_event(struct modem *m, void *arg, short revents)
{
	struct ms_call *c = &m->call;

	if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c->remote.eof)
		call_end_read(m, &c->remote, &c->down, -1);
	if ((revents & POLLOUT) && call_end_write(&c->remote) < 0) {
		ms_log(m, "call %ld remote connection failed: %s", c->no, strerror(errno));
		call_lost(m, "remote");
	}
}

static void call_relay_done(struct modem *m, int i)
{
	struct ms_relay *r = &m->call.relays[i];

	if (r->client.eof && r->remote.eof && r->client.shut_done && r->remote.shut_done)
		call_relay_close(m, i, "both sides closed");
}

/* The direction of the line a relay end's data takes: the client of a
 * gateway connection sends up, of a reverse gateway connection down. */
static struct ms_pipe *call_relay_pipe(struct modem *m, const struct ms_relay *r, bool client)
{
	return client != r->reverse ? &m->call.up : &m->call.down;
}

static void call_relay_client(struct modem *m, void *arg, short revents)
{
	int i = (int)(intptr_t)arg;
	struct ms_relay *r = &m->call.relays[i];

	if ((revents & (POLLIN | POLLHUP | POLLERR)) && !r->client.eof)
		call_end_read(m, &r->client, call_relay_pipe(m, r, true), i);
	if ((revents & POLLOUT) && call_end_write(&r->client) < 0) {
		call_relay_close(m, i, "client write failed");
		return;
	}
	call_relay_done(m, i);
}

static void call_relay_remote(struct modem *m, void *arg, short revents)
{
	int i = (int)(intptr_t)arg;
	struct ms_relay *r = &m->call.relays[i];
	int err = 0;
	socklen_t len = sizeof(err);

	if (r->connecting) {
		getsockopt(r->remote.fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			ms_log(m, "call %ld gateway connection %d: connect %s: %s", m->call.no, i,
			       r->reverse ? m->o.rtarget_name : m->o.target_name, strerror(err));
			call_relay_close(m, i, "connect failed");
			return;
		}
		r->connecting = false;
	}
	if ((revents & (POLLIN | POLLHUP | POLLERR)) && !r->remote.eof)
		call_end_read(m, &r->remote, call_relay_pipe(m, r, false), i);
	if ((revents & POLLOUT) && call_end_write(&r->remote) < 0) {
		call_relay_close(m, i, "remote write failed");
		return;
	}
	call_relay_done(m, i);
}

/* A connection on a gateway port (arg 1: the reverse one) becomes a relay. */
static void call_accept(struct modem *m, void *arg, short revents)
{
	struct ms_call *c = &m->call;
	bool reverse = arg != NULL;
	int fd = accept4(reverse ? c->rlisten_fd : c->listen_fd, NULL, NULL,
			 SOCK_NONBLOCK | SOCK_CLOEXEC),
	    i;

	if (fd < 0)
		return;
	for (i = 0; i < MS_MAXRELAY && c->relays[i].used; i++)
		;
	if (i == MS_MAXRELAY) {
		ms_log(m, "call %ld gateway: too many connections, refusing one", c->no);
		close(fd);
		return;
	}
	memset(&c->relays[i], 0, sizeof(c->relays[i]));
	c->relays[i].client.fd = fd;
	c->relays[i].reverse = reverse;
	c->relays[i].remote.fd =
	    reverse ? call_socket_to(&m->o.rtarget, m->o.rtarget_len) : call_socket(m);
	if (c->relays[i].remote.fd < 0) {
		ms_log(m, "call %ld gateway: connect %s: %s", c->no,
		       reverse ? m->o.rtarget_name : m->o.target_name, strerror(errno));
		close(fd);
		return;
	}
	c->relays[i].used = c->relays[i].connecting = true;
	ms_log(m, "call %ld %sgateway connection %d accepted", c->no, reverse ? "reverse " : "", i);
}

/* ---- the loop's view ------------------------------------------------------ */

static void call_prepare_end(struct modem *m, struct ms_poll *p, struct ms_end *e,
			     struct ms_pipe *into, bool connecting,
			     void (*cb)(struct modem *, void *, short), void *arg)
{
	short ev = 0;

	if (connecting)
		ev = POLLOUT;
	else {
		if (!e->eof && into->bytes <= call_limit(m))
			ev |= POLLIN;
		if (e->off < e->out.len || (e->shut && !e->shut_done))
			ev |= POLLOUT;
	}
	if (ev)
		ms_poll_add(p, e->fd, ev, cb, arg);
}

void call_prepare(struct modem *m, struct ms_poll *p)
{
	struct ms_call *c = &m->call;

	if (m->state == ST_DIALING) {
		if (c->connecting) {
			ms_poll_add(p, c->remote.fd, POLLOUT, call_connect_event, NULL);
			ms_poll_timer(p, c->connect_deadline);
		}
		ms_poll_timer(p, c->due);
		return;
	}
	if (m->state != ST_ONLINE && m->state != ST_ONLINE_CMD)
		return;
	if (c->plus)
		ms_poll_timer(p, c->plus_time + (int64_t)m->s[12] * 20000);
	if (c->remote.fd >= 0)
		call_prepare_end(m, p, &c->remote, &c->down, false, call_remote_event, NULL);
	if (c->listen_fd >= 0)
		ms_poll_add(p, c->listen_fd, POLLIN, call_accept, NULL);
	if (c->rlisten_fd >= 0)
		ms_poll_add(p, c->rlisten_fd, POLLIN, call_accept, (void *)1);
	for (int i = 0; i < MS_MAXRELAY; i++) {
		struct ms_relay *r = &c->relays[i];
		if (!r->used)
			continue;
		call_prepare_end(m, p, &r->client, call_relay_pipe(m, r, true), false,
				 call_relay_client, (void *)(intptr_t)i);
		call_prepare_end(m, p, &r->remote, call_relay_pipe(m, r, false), r->connecting,
				 call_relay_remote, (void *)(intptr_t)i);
	}
	ms_poll_timer(p, call_next_due(m, &c->up, true));
	ms_poll_timer(p, call_next_due(m, &c->down, false));
}

void call_timers(struct modem *m)
{
	struct ms_call *c = &m->call;
	int64_t now = clock_usec();

	if (m->state == ST_DIALING) {
		if (c->connecting && now >= c->connect_deadline)
			call_failed(m, RC_NO_CARRIER, "connect timed out");
		else if (!c->connecting && c->due && now >= c->due)
			call_due(m);
		return;
	}
	if (m->state != ST_ONLINE && m->state != ST_ONLINE_CMD)
		return;
	call_escape_timer(m);
	if (call_run_pipe(m, &c->up, true))
		call_run_pipe(m, &c->down, false);
}
