/* The link check (see link_check.h). Invariant: it returns within ms, with
 * exactly one event, 4111 or 4112, logged. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/util.h>

#include "deliver/mx.h"
#include "dialup/link_check.h"
#include "lib/clock.h"
#include "mail/event.h"
#include "queue/queue.h"

/* Connects to one "ip:port" within ms; fd, or -1 with errno set. */
static int lc_connect_addr(const char *addr, int ms)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss), fd, err = 0;
	socklen_t elen = sizeof(err);
	struct pollfd p;

	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &len) < 0) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0) {
		err = errno;
		if (err == EINPROGRESS) {
			p = (struct pollfd){fd, POLLOUT, 0};
			err = poll(&p, 1, ms) == 1 ? 0 : ETIMEDOUT;
			if (err == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
				err = errno;
		}
	}
	if (err == 0)
		return fd;
	close(fd);
	errno = err;
	return -1;
}

/* Connects to host:port within ms, the name resolved as outbound delivery
 * resolves it (c-ares, dns_servers), each address in turn; fd or -1 with
 * why. Runs in the dial worker, so it may block. */
static int lc_connect(const struct config *cfg, const char *host, int port, int ms, struct buf *why)
{
	struct strlist addrs = {0};
	struct buf err = BUF_INIT;
	int fd = -1, e = 0;
	int64_t deadline = clock_usec() + (int64_t)ms * 1000;

	if (mx_host_wait(&cfg->dns_servers, host, port, ms, &addrs, &err) != Q_OK || addrs.n == 0) {
		buf_printf(why, "cannot resolve %s: %s", host,
			   err.len ? buf_cstr(&err) : "no address");
		goto out;
	}
	for (size_t i = 0; i < addrs.n && fd < 0; i++) {
		/* a share of what is left, so a silent first address does not
		 * take the time of the others */
		int64_t left = (deadline - clock_usec()) / 1000 / (int64_t)(addrs.n - i);
		if (left <= 0)
			break;
		fd = lc_connect_addr(addrs.v[i], (int)left);
		if (fd < 0)
			e = errno;
	}
	if (fd < 0)
		buf_printf(why, "no connection to %s port %d (%s)", host, port,
			   strerror(e ? e : ETIMEDOUT));
out:
	strlist_free(&addrs);
	buf_free(&err);
	return fd;
}

/* Reads the first line of the greeting on fd into greet (at most len - 1
 * bytes, NUL-terminated) until the deadline; its length. */
static size_t lc_read_greeting(int fd, char *greet, size_t len, int64_t deadline)
{
	size_t got = 0;

	while (got < len - 1 && !memchr(greet, '\n', got)) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = (deadline - clock_usec()) / 1000;
		ssize_t n;
		if (left <= 0 || poll(&p, 1, (int)left) != 1 ||
		    (n = read(fd, greet + got, len - 1 - got)) <= 0)
			break;
		got += (size_t)n;
	}
	greet[got] = '\0';
	return got;
}

int link_check_greeting(const struct config *cfg, const char *entry, const char *host, int port,
			int ms, struct buf *why)
{
	char greet[512];
	size_t got;
	int64_t deadline = clock_usec() + (int64_t)ms * 1000;
	int fd = lc_connect(cfg, host, port, ms, why);

	if (fd < 0)
		goto fail;
	got = lc_read_greeting(fd, greet, sizeof(greet), deadline);
	close(fd);
	greet[strcspn(greet, "\r\n")] = '\0';
	if (got < 4 || strncmp(greet, "220", 3) != 0) {
		buf_printf(why, "%s port %d: %s%s%s", host, port,
			   got ? "no SMTP greeting but '" : "no SMTP greeting within check_timeout",
			   got ? greet : "", got ? "'" : "");
		goto fail;
	}
	event_log(EV_SESSION_CHECK_OK, "Link check via %s: %s port %d answered: %s", entry, host,
		  port, greet);
	return 0;
fail:
	event_log(EV_SESSION_CHECK_FAILED, "Link check via %s failed: %s", entry, buf_cstr(why));
	return -1;
}
