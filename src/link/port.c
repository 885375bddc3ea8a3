/* The table of port back-ends and the calls that dispatch through it (see
 * port.h). Invariant: a port's ops are set exactly while it is open, so a
 * closed port is never handed to a back-end. */
#include <string.h>

#include "link/port.h"
#include "link/serial.h"

/* Searched in order; the row without a prefix takes any device, so it is last. */
static const struct port_ops *const port_backends[] = {
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
		if (ops->open(p, spec, c) < 0)
			return -1;
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
	p->ops = NULL;
	p->fd = -1;
	p->state = NULL;
}
