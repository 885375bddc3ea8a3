/* The daemon: loads the configuration, recovers the queue, opens listeners
 * and runs the event loop until SIGTERM/SIGINT; SIGHUP reopens the logs and
 * reloads the TLS certificates. Started as root, it becomes `user` once its
 * ports and control socket are open, before any modem is opened or any
 * mail is read from the network: it never keeps root unless run_as_root. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "mail/policy.h"
#include "mail/config.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "status/http.h"
#include "status/metrics.h"
#include "status/queue_summary.h"
#include "status/samples.h"
#include "deliver/delivery.h"
#include "mail/event.h"
#include "hub/hub.h"
#include "hub/answer.h"
#include "hub/odmr.h"
#include "dialup/session.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "queue/qindex.h"
#include "lib/notify.h"
#include "lib/priv.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"
#include "smtp/smtp_server.h"
#include "daemon/reconfig.h"

#define DAEMON_RECOVER_SLICE_MS 5 /* recovery work between two looks at the loop */

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
	struct reconfig *reconfig; /* reading the configuration again */
	struct metrics *metrics;   /* counters for /metrics */
	struct http *http;	   /* http_listen: status page and /metrics; NULL: off */
	struct event *sig_term, *sig_int, *sig_hup, *scan_timer, *sample_timer;
	struct event *recover;	    /* start-up recovery in slices; NULL when done */
	struct event *status_timer; /* STATUS= to systemd; NULL: no NOTIFY_SOCKET */
	const char *dir;
	int drop; /* started as root: become priv.user after the ports */
	struct priv priv;
	gid_t admin_gid; /* group of the control socket */
};

#define STATUS_EVERY_SEC 30 /* systemd's status line is refreshed this often */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	log_info("signal %d: stopping", (int)sig);
	notify_stopping();
	event_base_loopbreak(d->base);
}

/* The line `systemctl status` shows: link state and queue size. */
static void daemon_status_line(struct daemon *d, struct buf *out)
{
	sessions_summary(d->sessions, out);
}

static void on_status_timer(evutil_socket_t fd, short what, void *arg)
{
	struct buf line = BUF_INIT;

	daemon_status_line(arg, &line);
	notify_status(buf_cstr(&line));
	buf_free(&line);
}

/* READY=1 with the status line (at start, and when a reload is done). */
static void daemon_notify_ready(struct daemon *d)
{
	struct buf line = BUF_INIT;

	if (!notify_enabled())
		return;
	daemon_status_line(d, &line);
	notify_ready(buf_cstr(&line));
	buf_free(&line);
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

/* SIGHUP and `dialmail reload`: the configuration file is read again
 * (reconfig.h), the event and tracking logs reopened (logrotate renamed
 * them) and the TLS certificates reloaded; `dialmail reopen-logs` only
 * reopens the logs. Says what was done in out and as event 1008, or 1009
 * with why. -1 when something failed. */
static int daemon_reload(void *arg, int logs_only, struct buf *out)
{
	struct daemon *d = arg;
	struct buf why = BUF_INIT;
	int rc = 0, tls = 0;

	notify_reloading();
	if (event_reopen(d->dir) < 0) {
		buf_printf(out, "cannot reopen the logs under %s/log, the old files stay", d->dir);
		rc = -1;
	} else
		buf_puts(out, "logs reopened");
	if (!logs_only) {
		buf_puts(out, "; ");
		if (reconfig_reload(d->reconfig, out) < 0)
			rc = -1;
		tls = daemon_reload_tls(d, &why);
	}
	daemon_one_line(&why);
	if (tls > 0)
		buf_puts(out, "; TLS certificate reloaded");
	else if (tls < 0)
		buf_printf(out, "; TLS reload failed: %s, the old one stays", buf_cstr(&why));
	rc = tls < 0 ? -1 : rc;
	event_log(rc < 0 ? EV_RELOAD_FAILED : EV_RELOADED, "%s", buf_cstr(out));
	buf_free(&why);
	daemon_notify_ready(d);
	return rc;
}

/* reconfig's hooks: wait while a session is in progress; then the modules
 * that derived state from the configuration derive it again. */
static int daemon_busy(void *arg)
{
	struct daemon *d = arg;

	return d->sessions && sessions_busy(d->sessions);
}

static void daemon_reconfigured(void *arg)
{
	struct daemon *d = arg;

	struct timeval run = {d->cfg.queue_run_interval, 0};
	struct timeval sample = {d->cfg.queue_sample_interval, 0};

	event_set_levels(d->cfg.diag);
	qindex_reclassify(queue_index(d->queue)); /* routes and holds as they are now */
	delivery_reconfigure(d->delivery);
	sessions_reconfigure(d->sessions);
	event_add(d->scan_timer, &run); /* the intervals as they are now */
	if (d->sample_timer)
		event_add(d->sample_timer, &sample);
}

static void on_hangup(evutil_socket_t sig, short what, void *arg)
{
	struct buf out = BUF_INIT;

	log_info("signal %d: reloading", (int)sig);
	daemon_reload(arg, 0, &out);
	buf_free(&out);
}

static void on_scan_timer(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	if (d->recover == NULL) /* the pass at the end of recovery comes first */
		delivery_scan(d->delivery);
}

/* One slice of start-up recovery, then back to the loop (SMTP is served
 * meanwhile); at the end the counts are logged and the first queue run
 * starts. */
static void on_recover(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct q_recover_progress p;
	struct timeval now = {0, 0};

	if (queue_recover_step(d->queue, DAEMON_RECOVER_SLICE_MS)) {
		evtimer_add(d->recover, &now);
		return;
	}
	event_free(d->recover);
	d->recover = NULL;
	queue_recover_progress(d->queue, &p);
	event_log(EV_QUEUE_RECOVERED, "Queue opened: %d messages queued, %d damaged moved aside",
		  p.ok, p.corrupt);
	delivery_scan(d->delivery);
}

static void on_commit(const char *qid, int inbound, void *arg)
{
	struct daemon *d = arg;

	delivery_kick(d->delivery, qid);
	if (inbound) /* LAN submissions are not the session's inbound mail */
		sessions_note_message(d->sessions, qid);
}

/* Every queue_sample_interval: the queue's size into the ring file the
 * status page draws "queue over time" from. */
static void on_sample_timer(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct queue_summary qs;
	struct sample s;

	queue_summary_take(d->queue, &d->cfg, &qs);
	s.at = clock_now();
	s.messages = qs.messages;
	s.for_link = qs.by_state[QS_LINK];
	if (samples_append(d->dir, &s) < 0)
		log_warn("daemon: cannot write %s/queue.samples", d->dir);
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

/* http_listen: the status page and /metrics. A port that cannot be opened
 * is said (event 1003 and standard error) but does not stop the mail. */
static void daemon_http(struct daemon *d)
{
	struct http_ctx ctx = {d->base, &d->cfg, d->dir, d->queue, d->sessions, d->metrics};
	struct buf why = BUF_INIT;
	const char *kv[] = {"address", d->cfg.http_listen, NULL};

	if (d->cfg.http_listen[0] == '\0')
		return;
	d->http = http_start(&ctx, &why);
	if (d->http) {
		event_logkv(EV_LISTENING, kv, "HTTP (status page, /metrics) listening on %s",
			    d->cfg.http_listen);
	} else {
		event_logkv(EV_LISTEN_FAILED, kv, "HTTP: %s", buf_cstr(&why));
		log_warnx("http: %s", buf_cstr(&why));
	}
	buf_free(&why);
}

/* Before anything is opened. Started as root, the daemon will become
 * `user` unless run_as_root; a user or group that does not exist, or a user
 * that is root, stops it here (-1, said on stderr). */
static int daemon_plan_privileges(struct daemon *d)
{
	const struct config *cfg = &d->cfg;
	struct buf why = BUF_INIT, warn = BUF_INIT;
	int rc = 0;

	d->admin_gid = getegid();
	if (geteuid() == 0 && !cfg->run_as_root) {
		if (priv_resolve(cfg->user, cfg->group, &cfg->supplementary_groups, &d->priv, &why,
				 &warn) == 0 &&
		    d->priv.uid == 0)
			buf_printf(&why, "user %s is root", cfg->user);
		d->drop = why.len == 0;
		d->admin_gid = d->priv.gid;
	}
	if (why.len == 0 && *cfg->admin_group && priv_group_id(cfg->admin_group, &d->admin_gid) < 0)
		buf_printf(&why, "admin_group %s does not exist", cfg->admin_group);
	if (why.len) {
		fprintf(stderr,
			"dialmail: %s; started as root, the daemon runs as an unprivileged user "
			"(create it, set user = and group =, or run_as_root = yes)\n",
			buf_cstr(&why));
		rc = -1;
	}
	for (const char *w = buf_cstr(&warn); *w; w = strchr(w, '\n') + 1)
		log_warnx("privileges: %.*s", (int)strcspn(w, "\n"), w);
	buf_free(&why);
	buf_free(&warn);
	return rc;
}

/* The state directory goes to the user (mode 0751: others may pass through
 * to public/submit.sock, every local user's sendmail, but not list it or
 * open anything else: the subdirectories are closed), before the control
 * socket is made (which belongs to the admin group). */
static int daemon_give_spool(struct daemon *d)
{
	if (priv_chown_tree(d->dir, d->priv.uid, d->priv.gid) < 0 || chmod(d->dir, 0751) < 0) {
		event_log(EV_QUEUE_WRITE_FAILED, "Cannot give %s to user %s: %s", d->dir,
			  d->priv.user, strerror(errno));
		return -1;
	}
	return 0;
}

/* Becomes the unprivileged user for good (event 1030). */
static int daemon_drop_privileges(struct daemon *d)
{
	char uid[16], gid[16];
	const char *kv[] = {"user",   d->priv.user,	   "uid", uid, "gid", gid,
			    "groups", d->priv.group_names, NULL};

	if (priv_drop(&d->priv) < 0) {
		log_warn("daemon: cannot become user %s", d->priv.user);
		return -1;
	}
	snprintf(uid, sizeof(uid), "%u", (unsigned)d->priv.uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)d->priv.gid);
	event_logkv(EV_PRIVILEGES_DROPPED, kv, "Running as user %s (uid %s, gid %s, groups %s)",
		    d->priv.user, uid, gid, d->priv.group_names);
	return 0;
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
	int listening = 0;
	struct timeval tv = {d->cfg.queue_run_interval, 0}, now = {0, 0};
	struct timeval sample_tv = {d->cfg.queue_sample_interval, 0};

	if (fs_mkdirs(d->dir, 0751) < 0) {
		log_warn("cannot create %s", d->dir);
		return -1;
	}
	if (event_open(d->dir, d->cfg.diag, d->cfg.use_syslog) < 0) {
		log_warn("cannot open the event log under %s", d->dir);
		return -1;
	}
	if (geteuid() == 0 && d->cfg.run_as_root)
		event_log(EV_RUNNING_AS_ROOT,
			  "Started as root with run_as_root = yes: running as root");
	daemon_fd_limit(d);
	if (config_record_path(d->dir, d->cfg.path) < 0)
		log_warn("cannot record the configuration path in %s", d->dir);
	d->queue = queue_open(d->dir);
	if (d->queue == NULL) {
		event_log(EV_QUEUE_WRITE_FAILED, "Cannot open the queue under %s: %s", d->dir,
			  strerror(errno));
		return -1;
	}
	qindex_set_config(queue_index(d->queue), &d->cfg);
	/* Listen first: the queue's envelopes are read into the index in
	 * slices on the loop (on_recover); only tmp/ is cleaned up now. */
	if (queue_recover_begin(d->queue) != Q_OK) {
		event_log(EV_QUEUE_WRITE_FAILED, "Cannot read the queue under %s: %s", d->dir,
			  strerror(errno));
		return -1;
	}
	d->base = event_base_new();
	d->metrics = metrics_new(d->dir);
	track_set_observer(metrics_on_track, d->metrics);
	d->delivery = delivery_new(d->base, &d->cfg, d->queue, d->dir);
	d->smtp = smtp_server_new(d->base, &d->cfg, d->queue, on_commit, d);
	d->hub = hub_new(&d->cfg, d->queue, d->delivery);
	if (policy_hub_enabled(&d->cfg))
		smtp_server_set_etrn(d->smtp, hub_etrn, d->hub);
	d->odmr = odmr_hub_new(d->base, &d->cfg, d->queue, d->delivery);
	for (size_t i = 0; i < d->cfg.listen.n; i++)
		if (smtp_server_listen_item(d->smtp, i) == 0)
			listening++;
	if (listening == 0 && d->cfg.listen.n > 0) {
		event_log(EV_LISTEN_FAILED, "No SMTP listener could be opened; stopping");
		return -1;
	}
	daemon_listen_local(d);
	if (d->drop && daemon_give_spool(d) < 0)
		return -1;
	d->control = control_listen(d->base, d->dir, d->delivery, d->drop ? d->priv.uid : geteuid(),
				    d->admin_gid);
	if (d->drop && daemon_drop_privileges(d) < 0)
		return -1;
	d->answer = answer_new(d->base, &d->cfg, d->odmr); /* opens modems: as the user */
	d->sessions = sessions_new(d->base, &d->cfg, d->dir, d->delivery, d->queue, d->smtp);
	control_set_sessions(d->control, d->sessions);
	control_set_queue(d->control, d->queue);
	d->reconfig = reconfig_new(d->base, &d->cfg,
				   &(struct reconfig_hooks){daemon_busy, daemon_reconfigured, d});
	control_set_reload(d->control, daemon_reload, d);
	daemon_http(d);
	d->sig_term = evsignal_new(d->base, SIGTERM, on_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_signal, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_hangup, d);
	d->scan_timer = event_new(d->base, -1, EV_PERSIST, on_scan_timer, d);
	d->sample_timer = event_new(d->base, -1, EV_PERSIST, on_sample_timer, d);
	event_add(d->sig_term, NULL);
	event_add(d->sig_int, NULL);
	event_add(d->sig_hup, NULL);
	event_add(d->scan_timer, &tv);
	d->recover = evtimer_new(d->base, on_recover, d);
	evtimer_add(d->recover, &now);
	event_add(d->sample_timer, &sample_tv);
	on_sample_timer(-1, 0, d);
	if (notify_enabled()) {
		struct timeval every = {STATUS_EVERY_SEC, 0};

		d->status_timer = event_new(d->base, -1, EV_PERSIST, on_status_timer, d);
		event_add(d->status_timer, &every);
	}
	signal(SIGPIPE, SIG_IGN);
	event_log(EV_SERVICE_STARTED, "dialmail %s started (state in %s, configuration %s)",
		  DIALMAIL_VERSION, d->dir, d->cfg.path ? d->cfg.path : "embedded defaults");
	daemon_notify_ready(d);
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
	if (d->recover)
		event_free(d->recover);
	if (d->sample_timer)
		event_free(d->sample_timer);
	http_free(d->http);
	if (d->status_timer)
		event_free(d->status_timer);
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
	track_set_observer(NULL, NULL);
	metrics_free(d->metrics);
	reconfig_free(
	    d->reconfig); /* the old configurations after the modules pointing into them */
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
	if (daemon_load_config(&d, config_path) < 0 || daemon_plan_privileges(&d) < 0) {
		config_free(&d.cfg);
		return 78; /* EX_CONFIG */
	}
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
