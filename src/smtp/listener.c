/* SMTP listening sockets and the service each one offers. Invariant: a
 * submission or submissions listener exists only with TLS and AUTH
 * configured (listener_config_check refuses the file otherwise). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/xmalloc.h"
#include "smtp/listener.h"

struct listener *listener_new(const struct config *cfg, const char *addr)
{
	struct listener *l = xcalloc(1, sizeof(*l));

	l->addr = xstrdup(addr);
	l->cfg = *cfg;
	l->service = LISTEN_SMTP;
	return l;
}

struct listener *listener_new_item(const struct config *cfg, size_t i)
{
	struct listener *l = listener_new(cfg, cfg->listen.v[i]);

	listen_config(cfg, i, &l->cfg);
	l->service = cfg->listen_spec[i].service;
	return l;
}

void listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	free(l->addr);
	free(l);
}

int listener_auth_required(const struct listener *l)
{
	return l->service != LISTEN_SMTP;
}

int listener_implicit_tls(const struct listener *l)
{
	return l->service == LISTEN_SUBMISSIONS;
}

/* Splits "host:port" or "[v6]:port" into host text and port number. */
static int listener_split(const char *s, char *host, size_t hostlen, int *v6, long *port)
{
	const char *colon, *p;
	char *end;
	size_t hl;

	*v6 = s[0] == '[';
	if (*v6) {
		colon = strstr(s, "]:");
		hl = colon ? (size_t)(colon - s - 1) : 0;
		p = colon ? colon + 2 : NULL;
		s++;
	} else {
		colon = strchr(s, ':');
		hl = colon ? (size_t)(colon - s) : 0;
		p = colon && !strchr(colon + 1, ':') ? colon + 1 : NULL;
	}
	if (p == NULL || hl == 0 || hl >= hostlen || *p < '0' || *p > '9')
		return -1;
	*port = strtol(p, &end, 10);
	if (*end || *port < 1 || *port > 65535)
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	return 0;
}

/* "host:port" or "[v6]:port", numeric only. */
static int listener_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char host[INET6_ADDRSTRLEN];
	long port;
	int v6;

	memset(ss, 0, sizeof(*ss));
	if (listener_split(s, host, sizeof(host), &v6, &port) < 0)
		return -1;
	if (!v6 && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (v6 && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

/* A socket call failed: errno's text in why, fd closed; -1. */
static int listener_fail(int fd, struct buf *why)
{
	int err = errno;

	buf_puts(why, strerror(err));
	if (fd >= 0)
		close(fd);
	return -1;
}

int listener_socket(const char *addr, struct buf *why)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1;

	if (listener_parse_addr(addr, &ss, &len) < 0) {
		buf_puts(why, "not a numeric host:port or [v6]:port");
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
		goto fail;
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0)
		goto fail;
	return fd;
fail:
	return listener_fail(fd, why);
}

int listener_unix_socket(const char *path, struct buf *why)
{
	struct sockaddr_un sun;
	int fd = -1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		buf_printf(why, "socket path too long");
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (unlink(path) < 0 && errno != ENOENT)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0666) < 0 ||
	    listen(fd, 128) < 0)
		goto fail;
	return fd;
fail:
	return listener_fail(fd, why);
}

int listener_config_check(const struct config *cfg, int have_auth, struct buf *err)
{
	struct buf where = BUF_INIT;
	int n = 0;

	config_where(cfg, "listen", &where);
	for (size_t i = 0; i < cfg->listen.n; i++) {
		const char *sv = listen_service_name(cfg->listen_spec[i].service);

		if (cfg->listen_spec[i].service == LISTEN_SMTP)
			continue;
		if (cfg->tls_cert_file == NULL || *cfg->tls_cert_file == '\0') {
			buf_printf(err, "%slisten: %s %s needs tls_cert_file and tls_key_file\n",
				   buf_cstr(&where), cfg->listen.v[i], sv);
			n++;
		}
		if (!have_auth) {
			buf_printf(
			    err, "%slisten: %s %s needs auth_users_file (or auth_dovecot_socket)\n",
			    buf_cstr(&where), cfg->listen.v[i], sv);
			n++;
		}
	}
	buf_free(&where);
	return n;
}
