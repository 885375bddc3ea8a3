/* The table of port back-ends and the calls that dispatch through it (see
 * port.h), and the poll()-bounded reads and writes that back-ends whose
 * line is a descriptor share. Invariant: a port's ops are set exactly while
 * it is open, so a closed port is never handed to a back-end. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/xmalloc.h"

#include "link/port.h"

/* Searched in order; the row without a prefix takes any device, so it is last. */
static const struct port_ops *const port_backends[] = {
    &port_tcp_ops,
    &serial_port_ops,
};

int port_open(struct port *p, const struct port_spec *spec, struct cause *c)
{
	size_t n = sizeof(port_backends) / sizeof(port_backends[0]);

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	for (size_t i = 0; i < n; i++) {
		const struct port_ops *ops = port_backends[i];
		if (ops->prefix && strncmp(spec->device, ops->prefix, strlen(ops->prefix)) != 0)
			continue;
		p->device = xstrdup(spec->device);
		if (ops->open(p, spec, c) < 0) {
			port_close(p);
			return -1;
		}
		p->ops = ops;
		return 0;
	}
	cause_set(c, CAUSE_DEVICE_MISSING, spec->device);
	return -1;
}

ssize_t port_read(struct port *p, void *data, size_t len, int timeout_ms, struct cause *c)
{
	return p->ops->read(p, data, len, timeout_ms, c);
}

int port_write(struct port *p, const void *data, size_t len, int timeout_ms, struct cause *c)
{
	return p->ops->write(p, data, len, timeout_ms, c);
}

void port_drain(struct port *p)
{
	p->ops->drain(p);
}

int port_hangup(struct port *p, int hold_ms, struct cause *c)
{
	return p->ops->hangup(p, hold_ms, c);
}

void port_close(struct port *p)
{
	if (p->ops)
		p->ops->close(p);
	free(p->device);
	p->ops = NULL;
	p->fd = -1;
	p->device = NULL;
	p->state = NULL;
}

/* --- for back-ends whose line is a descriptor --------------------------- */

static void port_fd_cause(const struct port *p, struct cause *c, int err)
{
	cause_set(c, CAUSE_DEVICE_GONE, NULL);
	snprintf(c->words, sizeof(c->words), "%s: %s", p->device, strerror(err));
}

int port_fd_write(struct port *p, const void *data, size_t len, int timeout_ms, struct cause *c)
{
	const char *d = data;
	long long deadline = clock_mono_ms() + timeout_ms;

	while (len > 0) {
		struct pollfd pfd = {p->fd, POLLOUT, 0};
		long long left = deadline - clock_mono_ms();
		ssize_t n;

		if (left <= 0) {
			cause_set(c, CAUSE_NO_RESPONSE,
				  "the modem does not accept data (flow control?)");
			return -1;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			port_fd_cause(p, c, errno);
			return -1;
		}
		n = write(p->fd, d, len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			port_fd_cause(p, c, errno);
			return -1;
		}
		d += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t port_fd_read(struct port *p, void *data, size_t len, int timeout_ms, struct cause *c)
{
	long long deadline = clock_mono_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = {p->fd, POLLIN, 0};
		long long left = deadline - clock_mono_ms();
		int rc;
		ssize_t n;

		if (left < 0)
			left = 0;
		rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			port_fd_cause(p, c, errno);
			return -1;
		}
		if (rc == 0)
			return 0;
		n = read(p->fd, data, len);
		if (n > 0)
			return n;
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (left == 0)
				return 0;
			continue;
		}
		if (n == 0) {
			cause_set(c, CAUSE_CARRIER_LOST, "end of file on the line");
			return -1;
		}
		port_fd_cause(p, c, errno);
		return -1;
	}
}
