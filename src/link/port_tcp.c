/* The TCP back-end of port.h: an AT terminal on a TCP port, as satellite
 * terminals and cellular routers offer it, named "tcp:HOST:PORT" (an IPv6
 * address in brackets). A hang-up closes the connection and connects again,
 * as the serial one drops DTR and reopens the tty. Invariant: no call blocks
 * longer than its timeout; a connect, PORT_TCP_CONNECT_MS. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/xmalloc.h"
#include "link/port.h"

#define PORT_TCP_CONNECT_MS 10000 /* for each address of the host */

struct port_tcp {
	char *host, *service; /* from p->device, "tcp:192.0.2.7:2000" */
};

/* "tcp:HOST:PORT" or "tcp:[ADDR]:PORT" into host and service; -1 if malformed. */
static int port_tcp_split(const char *device, struct port_tcp *t)
{
	const char *s = device + strlen("tcp:");
	const char *colon = strrchr(s, ':');
	size_t hlen;

	if (colon == NULL || colon == s || colon[1] == '\0')
		return -1;
	hlen = (size_t)(colon - s);
	if (s[0] == '[' && hlen > 2 && s[hlen - 1] == ']') {
		s++;
		hlen -= 2;
	}
	t->host = xstrndup(s, hlen);
	t->service = xstrdup(colon + 1);
	return 0;
}

/* One address: a non-blocking connect, waited for up to PORT_TCP_CONNECT_MS.
 * The connected socket, or -1 with errno set. */
static int port_tcp_try(const struct addrinfo *ai)
{
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	struct pollfd pfd = {fd, POLLOUT, 0};
	int rc, err = 0, one = 1;
	socklen_t elen = sizeof(err);

	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
		goto fail;
	do
		rc = poll(&pfd, 1, PORT_TCP_CONNECT_MS);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0) {
		errno = rc == 0 ? ETIMEDOUT : errno;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
		errno = err ? err : errno;
		goto fail;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* AT lines are small */
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/* Connects p->fd to the terminal; an unknown host is the configuration's
 * fault (CAUSE_DEVICE_MISSING), a refused or silent one the device's. */
static int port_tcp_connect(struct port *p, struct cause *c)
{
	struct port_tcp *t = p->state;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int rc = getaddrinfo(t->host, t->service, &hints, &res), err = 0;

	if (rc != 0) {
		cause_set(c, CAUSE_DEVICE_MISSING, NULL);
		snprintf(c->words, sizeof(c->words), "%s: %s", p->device, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai && p->fd < 0; ai = ai->ai_next)
		if ((p->fd = port_tcp_try(ai)) < 0)
			err = errno;
	freeaddrinfo(res);
	if (p->fd >= 0)
		return 0;
	cause_set(c, CAUSE_DEVICE_GONE, NULL);
	snprintf(c->words, sizeof(c->words), "%s: %s", p->device, strerror(err));
	return -1;
}

static void port_tcp_close(struct port *p)
{
	struct port_tcp *t = p->state;

	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	if (t) {
		free(t->host);
		free(t->service);
		free(t);
	}
	p->state = NULL;
}

static int port_tcp_open(struct port *p, const struct port_spec *spec, struct cause *c)
{
	struct port_tcp *t = p->state = xcalloc(1, sizeof(*t));

	if (port_tcp_split(spec->device, t) < 0) {
		cause_set(c, CAUSE_DEVICE_MISSING, NULL);
		snprintf(c->words, sizeof(c->words), "%s: not tcp:HOST:PORT", spec->device);
		port_tcp_close(p);
		return -1;
	}
	if (port_tcp_connect(p, c) < 0) {
		port_tcp_close(p);
		return -1;
	}
	return 0;
}

/* What already arrived is read and thrown away. */
static void port_tcp_drain(struct port *p)
{
	char junk[256];

	if (p->fd >= 0)
		while (recv(p->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
}

static int port_tcp_hangup(struct port *p, int hold_ms, struct cause *c)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	if (hold_ms > 0)
		clock_sleep_ms(hold_ms);
	return port_tcp_connect(p, c);
}

const struct port_ops port_tcp_ops = {
    .name = "tcp",
    .prefix = "tcp:",
    .open = port_tcp_open,
    .read = port_fd_read,
    .write = port_fd_write,
    .drain = port_tcp_drain,
    .hangup = port_tcp_hangup,
    .close = port_tcp_close,
};
