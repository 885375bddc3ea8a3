/* Dovecot's auth-client protocol (version 1): the client says VERSION and
 * CPID, then AUTH id mech service=smtp ... resp=BASE64; the server answers
 * CONT id BASE64, OK id user=NAME or FAIL id [user=NAME] [temp]. Lines are
 * tab-separated and end in LF; the server's handshake lines (MECH, SPID,
 * CUID, COOKIE, DONE) are not needed and skipped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "smtp/sasl_dovecot.h"

#define DC_TIMEOUT  30 /* seconds Dovecot has for each answer */
#define DC_LINE_MAX 8192

struct sasl_dovecot {
	struct bufferevent *bev;
	unsigned id;
	void (*done)(enum sasl_dc_rc rc, const char *data, void *arg);
	void *arg;
	struct event *ev_fail; /* a failure found while starting, told from the loop */
	char *why;
};

/* Ends the exchange with rc (the connection is closed first) and calls
 * done last: done may free x. */
static void dc_finish(struct sasl_dovecot *x, enum sasl_dc_rc rc, const char *data)
{
	char *copy = data ? xstrdup(data) : NULL;

	if (rc != SASL_DC_CONTINUE && x->bev) {
		bufferevent_free(x->bev);
		x->bev = NULL;
	}
	x->done(rc, copy, x->arg);
	free(copy);
}

/* The value of "name=" among the tab-separated fields of args, or NULL. */
static const char *dc_param(char *args, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);

	for (char *f = args; f && *f; f = strchr(f, '\t') ? strchr(f, '\t') + 1 : NULL) {
		size_t len = strcspn(f, "\t");

		if (len == n && strncmp(f, name, n) == 0 && n > 0 && name[n - 1] != '=')
			return ""; /* a flag such as "temp" */
		if (len > n && strncmp(f, name, n) == 0) {
			snprintf(out, outlen, "%.*s", (int)(len - n), f + n);
			return out;
		}
	}
	return NULL;
}

/* One line from Dovecot: 1 when it ended the step (x may be gone). */
static int dc_line(struct sasl_dovecot *x, char *line)
{
	char *tab = strchr(line, '\t'), *args;
	char user[256];
	unsigned long id;

	if (tab == NULL)
		return 0;
	*tab = '\0';
	id = strtoul(tab + 1, &args, 10);
	if (id != x->id || (strcmp(line, "OK") && strcmp(line, "CONT") && strcmp(line, "FAIL")))
		return 0; /* handshake lines, or not ours */
	args += *args == '\t';
	if (strcmp(line, "CONT") == 0) {
		args[strcspn(args, "\t")] = '\0';
		dc_finish(x, SASL_DC_CONTINUE, args);
	} else if (strcmp(line, "OK") == 0) {
		dc_finish(x, SASL_DC_OK, dc_param(args, "user=", user, sizeof(user)));
	} else if (dc_param(args, "temp", user, sizeof(user))) {
		dc_finish(x, SASL_DC_TEMPFAIL, "the auth service failed temporarily");
	} else {
		dc_finish(x, SASL_DC_FAIL, dc_param(args, "user=", user, sizeof(user)));
	}
	return 1;
}

static void dc_read_cb(struct bufferevent *bev, void *arg)
{
	struct sasl_dovecot *x = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		int ended = dc_line(x, line);

		free(line);
		if (ended)
			return;
	}
	if (evbuffer_get_length(in) > DC_LINE_MAX)
		dc_finish(x, SASL_DC_TEMPFAIL, "the auth service sent an overlong line");
}

static void dc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sasl_dovecot *x = arg;
	char why[160];

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "the auth service did not answer in %d seconds",
			 DC_TIMEOUT);
	else if (what & BEV_EVENT_ERROR)
		snprintf(why, sizeof(why), "auth service: %s", strerror(EVUTIL_SOCKET_ERROR()));
	else
		snprintf(why, sizeof(why), "the auth service closed the connection");
	dc_finish(x, SASL_DC_TEMPFAIL, why);
}

static void dc_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sasl_dovecot *x = arg;

	dc_finish(x, SASL_DC_TEMPFAIL, x->why);
}

/* A nonblocking connection to the socket at path, requests queued. */
static int dc_connect(struct sasl_dovecot *x, struct event_base *base, const char *path)
{
	struct sockaddr_un sun;
	struct timeval tv = {DC_TIMEOUT, 0};

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		x->why = xasprintf("auth service socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	x->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(x->bev, dc_read_cb, NULL, dc_event_cb, x);
	bufferevent_set_timeouts(x->bev, &tv, &tv);
	if (bufferevent_socket_connect(x->bev, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		x->why =
		    xasprintf("cannot connect to the auth service %s: %s", path, strerror(errno));
		bufferevent_free(x->bev);
		x->bev = NULL;
		return -1;
	}
	bufferevent_enable(x->bev, EV_READ | EV_WRITE);
	return 0;
}

struct sasl_dovecot *
sasl_dovecot_start(struct event_base *base, const char *path, const char *mech, const char *resp,
		   const char *client_ip, int secured,
		   void (*done)(enum sasl_dc_rc rc, const char *data, void *arg), void *arg)
{
	static unsigned next_id;
	struct sasl_dovecot *x = xcalloc(1, sizeof(*x));
	struct timeval now = {0, 0};

	x->id = ++next_id;
	x->done = done;
	x->arg = arg;
	if (dc_connect(x, base, path) < 0) {
		x->ev_fail = evtimer_new(base, dc_fail_cb, x);
		evtimer_add(x->ev_fail, &now);
		return x;
	}
	evbuffer_add_printf(
	    bufferevent_get_output(x->bev),
	    "VERSION\t1\t0\nCPID\t%d\nAUTH\t%u\t%s\tservice=smtp\tnologin\trip=%s%s%s%s\n",
	    (int)getpid(), x->id, mech, client_ip, secured ? "\tsecured" : "",
	    resp ? "\tresp=" : "", resp && strcmp(resp, "=") ? resp : "");
	return x;
}

void sasl_dovecot_answer(struct sasl_dovecot *x, const char *b64)
{
	if (x->bev)
		evbuffer_add_printf(bufferevent_get_output(x->bev), "CONT\t%u\t%s\n", x->id, b64);
}

void sasl_dovecot_free(struct sasl_dovecot *x)
{
	if (x == NULL)
		return;
	if (x->bev)
		bufferevent_free(x->bev);
	if (x->ev_fail)
		event_free(x->ev_fail);
	free(x->why);
	free(x);
}
