/* modemsim: incoming calls (--answer-port). A TCP connection to the answer
 * port is a call ringing this modem: RING every --ring-interval until the
 * program on the pty answers (ATA, or S0=n rings auto-answer), the caller
 * goes away, or --max-rings pass. Answered, the connection is the call's far
 * end exactly as a --connect socket is for a dialled call (same pacing,
 * NO CARRIER when it closes). Two modemsims make a telephone line: the
 * caller's --connect points at the answerer's --answer-port. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/clock.h"
#include "modemsim.h"

int answer_listen(struct modem *m)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(m->o.answer_port)};
	int fd, one = 1;

	m->ring_fd = -1;
	m->answer_fd = -1;
	if (!m->o.answer_port)
		return 0;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 4) < 0) {
		close(fd);
		return -1;
	}
	m->answer_fd = fd;
	return 0;
}

bool answer_ringing(const struct modem *m)
{
	return m->ring_fd >= 0;
}

static void answer_stop_ringing(struct modem *m, const char *why)
{
	ms_log(m, "incoming call not answered (%s) after %d rings", why, m->rings);
	close(m->ring_fd);
	m->ring_fd = -1;
	m->gen++;
}

/* A caller while we are busy (a call up, dialing, or already ringing) hears
 * nothing: the connection is closed at once, which its modem reports as NO
 * CARRIER. */
static void answer_accept(struct modem *m, void *arg, short revents)
{
	int fd = accept4(m->answer_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (m->state != ST_COMMAND || m->ring_fd >= 0 || m->wedge != WEDGE_NONE) {
		ms_log(m, "incoming call refused: modem busy");
		close(fd);
		return;
	}
	m->ring_fd = fd;
	m->rings = 0;
	m->next_ring = clock_usec();
	ms_log(m, "incoming call ringing");
}

/* The caller hung up before we answered (or sent data, which waits). */
static void answer_caller_event(struct modem *m, void *arg, short revents)
{
	if (m->ring_fd < 0)
		return; /* answered earlier in this poll batch */
	if (revents & (POLLRDHUP | POLLHUP | POLLERR))
		answer_stop_ringing(m, "caller hung up");
}

int answer_pickup(struct modem *m)
{
	struct ms_call *c = &m->call;

	if (m->ring_fd < 0 || m->state != ST_COMMAND)
		return -1;
	m->attempts++;
	c->no = m->attempts;
	snprintf(c->number, sizeof(c->number), "incoming");
	memset(&c->oc, 0, sizeof(c->oc));
	c->oc.kind = OC_CONNECT;
	c->oc.drop = -1;
	c->speed = m->o.bps;
	c->drop = m->o.drop_after;
	c->tx = c->rx = 0;
	c->plus = 0;
	c->connecting = false;
	c->remote.fd = m->ring_fd;
	m->ring_fd = -1;
	m->gen++; /* the poll batch saw ring_fd as the ringing caller */
	c->up.wire_free = c->down.wire_free = 0;
	ms_log(m, "call %ld answered after %d rings -> CONNECT %ld", c->no, m->rings, c->speed);
	if (c->drop >= 0)
		ms_log(m, "call %ld carrier will drop after %lld bytes", c->no, c->drop);
	return 0;
}

void answer_prepare(struct modem *m, struct ms_poll *p)
{
	if (m->answer_fd >= 0)
		ms_poll_add(p, m->answer_fd, POLLIN, answer_accept, NULL);
	if (m->ring_fd >= 0) {
		ms_poll_add(p, m->ring_fd, POLLRDHUP, answer_caller_event, NULL);
		ms_poll_timer(p, m->next_ring);
	}
}

void answer_timers(struct modem *m)
{
	if (m->ring_fd < 0 || clock_usec() < m->next_ring)
		return;
	if (m->state != ST_COMMAND)
		return answer_stop_ringing(m, "modem busy");
	if (m->rings >= m->o.max_rings)
		return answer_stop_ringing(m, "no answer");
	m->rings++;
	m->next_ring = clock_usec() + (int64_t)m->o.ring_interval_ms * 1000;
	at_result(m, RC_RING, 0);
	ms_log(m, "incoming call RING %d", m->rings);
	if (m->s[0] > 0 && m->rings >= m->s[0] && answer_pickup(m) == 0) {
		at_result(m, RC_CONNECT, m->call.speed);
		call_online(m);
	}
}
