/* sendmail's way into the daemon for users who may not write the spool: a
 * plain SMTP client on the local submission socket, whose peer uid the
 * daemon records; and the -bs relay. Blocking I/O: one message, one
 * process. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/submit.h"
#include "lib/xmalloc.h"

struct submit_conn {
	FILE *in, *out;
	char line[1024]; /* the last reply's last line */
	int code;
};

/* A connection to DIR/public/submit.sock; -1 after a message. */
static int submit_connect(const char *dir)
{
	struct sockaddr_un sun;
	char *path = xasprintf("%s/public/submit.sock", dir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	signal(SIGPIPE, SIG_IGN); /* a daemon that hangs up is a reply, not a death */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr,
			"sendmail: cannot write the queue in %s and no dialmail daemon answers on "
			"%s: %s\n",
			dir, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

/* Reads one reply (all its lines); its code, or -1 if the daemon left. */
static int submit_reply(struct submit_conn *c)
{
	do {
		if (fgets(c->line, sizeof(c->line), c->in) == NULL || strlen(c->line) < 4)
			return c->code = -1;
	} while (c->line[3] == '-');
	c->line[strcspn(c->line, "\r\n")] = '\0';
	return c->code = atoi(c->line);
}

/* One command; 1 if its reply has code want (2xx, 3xx: first digit). */
static int submit_cmd(struct submit_conn *c, int want, const char *fmt, const char *arg)
{
	fprintf(c->out, fmt, arg);
	fputs("\r\n", c->out);
	fflush(c->out);
	return submit_reply(c) / 100 == want;
}

/* The message, dot-stuffed, and the end-of-data line. */
static void submit_data(struct submit_conn *c, const char *p, size_t n)
{
	int bol = 1;

	for (size_t i = 0; i < n; i++) {
		if (bol && p[i] == '.')
			fputc('.', c->out);
		fputc(p[i], c->out);
		bol = p[i] == '\n';
	}
	if (!bol)
		fputs("\r\n", c->out);
}

/* Why the daemon refused: the line on stderr, the status from its code. */
static int submit_refused(struct submit_conn *c, const char *what)
{
	if (c->code < 0) {
		fprintf(stderr, "sendmail: the daemon closed the connection at %s\n", what);
		return EX_TEMPFAIL;
	}
	fprintf(stderr, "sendmail: %s refused: %s\n", what, c->line);
	return c->code / 100 == 4 ? EX_TEMPFAIL : EX_DATAERR;
}

static int submit_session(struct submit_conn *c, const struct q_env *env, const struct buf *head,
			  const char *body, size_t blen, char *qid, size_t qidlen)
{
	const char *id;

	if (submit_reply(c) != 220)
		return submit_refused(c, "the greeting");
	if (!submit_cmd(c, 2, "EHLO %s", "localhost"))
		return submit_refused(c, "EHLO");
	if (!submit_cmd(c, 2, "MAIL FROM:<%s>", env->sender))
		return submit_refused(c, "the sender");
	for (size_t i = 0; i < env->nrcpt; i++)
		if (!submit_cmd(c, 2, "RCPT TO:<%s>", env->rcpt[i].addr))
			return submit_refused(c, env->rcpt[i].addr);
	if (!submit_cmd(c, 3, "%s", "DATA"))
		return submit_refused(c, "DATA");
	submit_data(c, head->data, head->len);
	submit_data(c, body, blen);
	if (!submit_cmd(c, 2, "%s", "."))
		return submit_refused(c, "the message");
	id = strstr(c->line, "queued as ");
	snprintf(qid, qidlen, "%s", id ? id + 10 : "?");
	submit_cmd(c, 2, "%s", "QUIT");
	return EX_OK;
}

int submit_via_daemon(const char *dir, const struct q_env *env, const struct buf *head,
		      const char *body, size_t blen, char *qid, size_t qidlen)
{
	struct submit_conn c = {0};
	int fd = submit_connect(dir), rc;

	if (fd < 0)
		return EX_TEMPFAIL;
	c.in = fdopen(fd, "r");
	c.out = fdopen(dup(fd), "w");
	if (c.in == NULL || c.out == NULL) {
		fprintf(stderr, "sendmail: %s\n", strerror(errno));
		rc = EX_OSERR;
	} else
		rc = submit_session(&c, env, head, body, blen, qid, qidlen);
	if (c.in)
		fclose(c.in);
	else
		close(fd);
	if (c.out)
		fclose(c.out);
	return rc;
}

/* Copies what is there from one descriptor to the other: 0 at EOF. */
static int submit_copy(int from, int to)
{
	char buf[4096];
	ssize_t n = read(from, buf, sizeof(buf));

	for (ssize_t off = 0; n > 0 && off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));

		if (w <= 0)
			return 0;
		off += w;
	}
	return n > 0;
}

int submit_dialogue(const char *dir)
{
	int fd = submit_connect(dir);
	struct pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {-1, POLLIN, 0}};

	if (fd < 0)
		return EX_TEMPFAIL;
	p[1].fd = fd;
	while (poll(p, 2, -1) > 0) {
		if (p[1].revents && !submit_copy(fd, STDOUT_FILENO))
			break; /* the daemon closed the session (QUIT) */
		if (p[0].revents && !submit_copy(STDIN_FILENO, fd)) {
			shutdown(fd, SHUT_WR); /* the client is done; read the rest */
			p[0].fd = -1;
		}
	}
	close(fd);
	return EX_OK;
}
