/* The daemon: loads the configuration, recovers the queue, opens listeners
 * and runs the event loop until SIGTERM/SIGINT; SIGHUP reopens the logs and
 * reloads the TLS certificates. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "mail/policy.h"
#include "mail/config.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "deliver/delivery.h"
#include "mail/event.h"
#include "hub/hub.h"
#include "hub/answer.h"
#include "hub/odmr.h"
#include "dialup/session.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"
#include "smtp/smtp_server.h"

struct daemon {
	struct event_base *base;
	struct config cfg;
	struct queue *queue;
	struct delivery *delivery;
	struct smtp_server *smtp;
	struct control *control;
	struct hub *hub;	   /* hold_domains and ETRN */
	struct odmr_hub *odmr;	   /* odmr_listen: ATRN (RFC 2645); NULL: off */
	struct answer *answer;	   /* [answer NAME] modems taking calls; NULL: none */
	struct sessions *sessions; /* dial-up sessions and their scheduler */
	struct event *sig_term, *sig_int, *sig_hup, *scan_timer;
	const char *dir;
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	log_info("signal %d: stopping", (int)sig);
	event_base_loopbreak(d->base);
}

/* The certificates of the SMTP and ODMR servers: 1 reloaded, 0 none
 * configured, -1 one refused (why in why; it keeps its old one). */
static int daemon_reload_tls(struct daemon *d, struct buf *why)
{
	int smtp = smtp_server_reload_tls(d->smtp, why);
	int odmr = odmr_hub_reload_tls(d->odmr, why);

	if (smtp < 0 || odmr < 0)
		return -1;
	return smtp > 0 || odmr > 0;
}

/* "path: problem\n" lines as one clause: "path: problem; path: problem". */
static void daemon_one_line(struct buf *b)
{
	while (b->len > 0 && b->data[b->len - 1] == '\n')
		b->data[--b->len] = '\0';
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] == '\n')
			b->data[i] = ';';
}

/* SIGHUP, `dialmail reload` and `dialmail reopen-logs`: reopens the event
 * and tracking logs (logrotate renamed them) and reloads the TLS
 * certificates; says what was done in out and as event 1008, or 1009 with
 * why. -1 when something failed. */
static int daemon_reload(void *arg, struct buf *out)
{
	struct daemon *d = arg;
	struct buf why = BUF_INIT;
	int rc = 0, tls;

	if (event_reopen(d->dir) < 0) {
		buf_printf(out, "cannot reopen the logs under %s/log, the old files stay", d->dir);
		rc = -1;
	} else
		buf_puts(out, "logs reopened");
	tls = daemon_reload_tls(d, &why);
	daemon_one_line(&why);
	if (tls > 0)
		buf_puts(out, "; TLS certificate reloaded");
	else if (tls < 0)
		buf_printf(out, "; TLS reload failed: %s, the old one stays", buf_cstr(&why));
	rc = tls < 0 ? -1 : rc;
	event_log(rc < 0 ? EV_RELOAD_FAILED : EV_RELOADED, "%s", buf_cstr(out));
	buf_free(&why);
	return rc;
}

static void on_hangup(evutil_socket_t sig, short what, void *arg)
{
	struct buf out = BUF_INIT;

	log_info("signal %d: reloading", (int)sig);
	daemon_reload(arg, &out);
	buf_free(&out);
}

static void on_scan_timer(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	delivery_scan(d->delivery);
}

static void on_commit(const char *qid, int inbound, void *arg)
{
	struct daemon *d = arg;

	delivery_kick(d->delivery, qid);
	if (inbound) /* LAN submissions are not the session's inbound mail */
		sessions_note_message(d->sessions, qid);
}

static int daemon_load_config(struct daemon *d, const char *config_path)
{
	struct buf err = BUF_INIT;

	if (config_load(&d->cfg, config_path, &err) < 0) {
		fprintf(stderr, "%s", buf_cstr(&err));
		buf_free(&err);
		return -1;
	}
	/* allowed with allow_insecure_key_file, but said at every start */
	for (const char *w = buf_cstr(&d->cfg.warnings); *w; w = strchr(w, '\n') + 1)
		log_warnx("config: %.*s", (int)strcspn(w, "\n"), w);
	buf_free(&err);
	return 0;
}

/* Descriptors the daemon holds besides its SMTP sessions and outbound
 * connections: standard streams, the event loop and its signal pipe, the
 * listeners and the control socket, the queue directories, the event and
 * tracking logs, syslog, DNS sockets, a modem and its lock, the committer's
 * pipe and each SMTP server's spare descriptor (smtp_server.c). */
#define FD_RESERVE 32

/* The SMTP sessions lim descriptors carry (docs/configuration.md): each
 * outbound connection takes a socket and a file, each SMTP session a socket
 * and its staged queue file, for each SMTP server (the ODMR port is one). */
static int daemon_fd_sessions(long lim, const struct config *cfg)
{
	int servers = cfg->odmr_listen.n > 0 ? 2 : 1;
	long n = (lim - FD_RESERVE - 2L * cfg->max_outbound_connections) / (2L * servers);

	return n < 1 ? 1 : n > INT_MAX ? INT_MAX : (int)n;
}

/* Raises RLIMIT_NOFILE's soft limit to the hard one, logs the figure, and
 * lowers max_connections to what the descriptors carry. */
static void daemon_fd_limit(struct daemon *d)
{
	struct rlimit rl;
	rlim_t was;
	long lim;
	int usable;
	char limtxt[24], usetxt[24], maxtxt[24];
	const char *kv[] = {"limit", limtxt, "usable", usetxt, "max_connections", maxtxt, NULL};

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("daemon: getrlimit(RLIMIT_NOFILE)");
		return;
	}
	was = rl.rlim_cur;
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			log_warn("daemon: cannot raise the descriptor limit to %llu",
				 (unsigned long long)rl.rlim_max);
			rl.rlim_cur = was;
		}
	}
	lim = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
	usable = daemon_fd_sessions(lim, &d->cfg);
	snprintf(limtxt, sizeof(limtxt), "%ld", lim);
	snprintf(usetxt, sizeof(usetxt), "%d", usable);
	snprintf(maxtxt, sizeof(maxtxt), "%d", d->cfg.max_connections);
	if (d->cfg.max_connections > usable) {
		event_logkv(EV_CONNECTIONS_LOWERED, kv,
			    "max_connections %d is more than %ld descriptors carry; using %d",
			    d->cfg.max_connections, lim, usable);
		d->cfg.max_connections = usable;
		snprintf(maxtxt, sizeof(maxtxt), "%d", usable);
	}
	event_logkv(EV_DESCRIPTOR_LIMIT, kv,
		    "Descriptor limit %ld (soft limit was %llu): up to %d SMTP connections "
		    "(max_connections %d)",
		    lim, (unsigned long long)was, usable, d->cfg.max_connections);
}

/* Every local user's sendmail submits through DIR/public/submit.sock
 * (public/ 0755, the socket 0666), the spool itself staying closed. */
static void daemon_listen_local(struct daemon *d)
{
	char *pub = xasprintf("%s/public", d->dir), *sock = xasprintf("%s/submit.sock", pub);

	if (fs_mkdirs(pub, 0755) < 0 || chmod(pub, 0755) < 0)
		log_warn("cannot create %s: local users cannot submit mail", pub);
	else
		smtp_server_listen_local(d->smtp, sock);
	free(pub);
	free(sock);
}

static int daemon_start(struct daemon *d)
{
	int n_ok = 0, n_corrupt = 0, listening = 0;
	struct timeval tv = {d->cfg.queue_run_interval, 0};

	if (fs_mkdirs(d->dir, 0755) < 0) {
		log_warn("cannot create %s", d->dir);
		return -1;
	}
	if (event_open(d->dir, d->cfg.diag, d->cfg.use_syslog) < 0) {
		log_warn("cannot open the event log under %s", d->dir);
		return -1;
	}
	daemon_fd_limit(d);
	if (config_record_path(d->dir, d->cfg.path) < 0)
		log_warn("cannot record the configuration path in %s", d->dir);
	d->queue = queue_open(d->dir);
	if (d->queue == NULL) {
		event_log(EV_QUEUE_WRITE_FAILED, "Cannot open the queue under %s: %s", d->dir,
			  strerror(errno));
		return -1;
	}
	queue_recover(d->queue, &n_ok, &n_corrupt);
	event_log(EV_QUEUE_RECOVERED, "Queue opened: %d messages queued, %d damaged moved aside",
		  n_ok, n_corrupt);
	d->base = event_base_new();
	d->delivery = delivery_new(d->base, &d->cfg, d->queue, d->dir);
	d->smtp = smtp_server_new(d->base, &d->cfg, d->queue, on_commit, d);
	d->hub = hub_new(&d->cfg, d->queue, d->delivery);
	if (policy_hub_enabled(&d->cfg))
		smtp_server_set_etrn(d->smtp, hub_etrn, d->hub);
	d->odmr = odmr_hub_new(d->base, &d->cfg, d->queue, d->delivery);
	d->answer = answer_new(d->base, &d->cfg, d->odmr);
	for (size_t i = 0; i < d->cfg.listen.n; i++)
		if (smtp_server_listen_item(d->smtp, i) == 0)
			listening++;
	if (listening == 0 && d->cfg.listen.n > 0) {
		event_log(EV_LISTEN_FAILED, "No SMTP listener could be opened; stopping");
		return -1;
	}
	daemon_listen_local(d);
	d->control = control_listen(d->base, d->dir, d->delivery);
	d->sessions = sessions_new(d->base, &d->cfg, d->dir, d->delivery, d->queue, d->smtp);
	control_set_sessions(d->control, d->sessions);
	control_set_reload(d->control, daemon_reload, d);
	d->sig_term = evsignal_new(d->base, SIGTERM, on_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_signal, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_hangup, d);
	d->scan_timer = event_new(d->base, -1, EV_PERSIST, on_scan_timer, d);
	event_add(d->sig_term, NULL);
	event_add(d->sig_int, NULL);
	event_add(d->sig_hup, NULL);
	event_add(d->scan_timer, &tv);
	signal(SIGPIPE, SIG_IGN);
	delivery_scan(d->delivery);
	event_log(EV_SERVICE_STARTED, "dialmail %s started (state in %s, configuration %s)",
		  DIALMAIL_VERSION, d->dir, d->cfg.path ? d->cfg.path : "embedded defaults");
	return 0;
}

static void daemon_stop(struct daemon *d)
{
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->scan_timer)
		event_free(d->scan_timer);
	if (d->control)
		control_free(d->control);
	/* The server first: stopping it finishes the commit in flight, whose
	 * on_commit still tells the sessions about the new message. */
	if (d->smtp)
		smtp_server_free(d->smtp);
	sessions_free(d->sessions);
	answer_free(d->answer);
	odmr_hub_free(d->odmr);
	hub_free(d->hub);
	if (d->delivery)
		delivery_free(d->delivery);
	if (d->base)
		event_base_free(d->base);
	if (d->queue)
		queue_close(d->queue);
	config_free(&d->cfg);
}

int cmd_daemon(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"config", required_argument, NULL, 'c'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct daemon d;
	const char *dir = NULL, *config_path = NULL;
	int c, rc = 0;

	memset(&d, 0, sizeof(d));
	while ((c = getopt_long(argc, argv, "d:c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'v':
			log_verbose(1);
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"usage: dialmail daemon [--dir DIR] [--config FILE] [--verbose]\n");
			return c == 'h' ? 0 : 64;
		}
	}
	d.dir = config_spool_dir(dir);
	if (daemon_load_config(&d, config_path) < 0)
		return 78; /* EX_CONFIG */
	if (daemon_start(&d) < 0) {
		daemon_stop(&d);
		return 71;
	}
	event_base_dispatch(d.base);
	event_log(EV_SERVICE_STOPPED, "dialmail stopped");
	daemon_stop(&d);
	event_close();
	return rc;
}
