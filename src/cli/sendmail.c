/* The sendmail interface (sendmail -t -i -f ...) and mailq. A message read
 * from stdin goes through the same durable path as SMTP (queue_commit);
 * invariant: either the whole message is committed and we exit 0, or
 * nothing is queued and the exit status says why (sysexits.h). */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_control.h"
#include "cli/mailmsg.h"
#include "cli/submit.h"
#include "mail/config.h"
#include "daemon/control.h"
#include "mail/event.h"
#include "mail/recipient.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/priv.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"
#include "mail/message.h"

struct sendmail_opts {
	int extract;  /* -t */
	int dot_ends; /* unless -i / -oi */
	int verbose;  /* -v: say the queue id */
	char mode;    /* -bm (m) deliver, -bp (p) list, -q (q) run the queue */
	const char *sender, *fullname, *dir, *config;
};

/* One submission being built. */
struct sendmail_job {
	const struct sendmail_opts *o;
	struct config cfg;
	const char *dir;
	char *user;  /* the invoking user's login name */
	char *gecos; /* their full name, or NULL */
	struct q_env env;
	struct buf msg;	      /* stdin, wire form */
	struct buf head;      /* Received: + kept header fields + added ones */
	struct strlist rcpts; /* recipients as given, before checks */
	int via_daemon;	      /* handed to the daemon's submission socket */
};

static void sendmail_usage(FILE *out)
{
	fprintf(out, "usage: sendmail [-t] [-i] [-f sender] [-F fullname] [-v] [-bm|-bp|-q]\n"
		     "                [-oX...] [-C config] [--dir DIR] [--config FILE] [--] "
		     "[recipient ...]\n"
		     "       sendmail -bs | -bv rcpt... | -bi | -q\n"
		     "       mailq [--dir DIR]\n       newaliases\n");
}

/* One -o option: only -oi means something here; the rest are accepted and
 * ignored as other sendmail implementations do (-oem, -odb, -oQ...). */
static void sendmail_opt_o(struct sendmail_opts *o, const char *arg)
{
	if (strcmp(arg, "i") == 0)
		o->dot_ends = 0;
}

/* -b mode: m (deliver), p (print the queue), s (SMTP on stdin/stdout),
 * v (verify the recipients), i (rebuild the aliases: nothing to do). */
static int sendmail_opt_b(struct sendmail_opts *o, const char *arg)
{
	if (strlen(arg) == 1 && strchr("mpsvi", arg[0])) {
		o->mode = arg[0];
		return 0;
	}
	fprintf(stderr, "sendmail: mode -b%s is not supported\n", arg);
	return -1;
}

/* Parses the options; recipients start at optind. -1: usage error. */
static int sendmail_parse(struct sendmail_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'D'},
	    {"config", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	/* "+": stop at the first recipient, as Postfix's sendmail does. */
	static const char shortopts[] = "+B:b:C:F:f:Gh:iL:mN:nO:o:p:q::R:r:tUV:vX:";
	int c;

	const char *base = strrchr(argv[0], '/');

	memset(o, 0, sizeof(*o));
	o->dot_ends = 1;
	o->mode = strcmp(base ? base + 1 : argv[0], "newaliases") == 0 ? 'i' : 'm';
	o->config = getenv("DIALMAIL_CONFIG");
	if (o->config && *o->config == '\0')
		o->config = NULL;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->extract = 1;
			break;
		case 'i':
			o->dot_ends = 0;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'f':
		case 'r':
			o->sender = optarg;
			break;
		case 'F':
			o->fullname = optarg;
			break;
		case 'o':
			sendmail_opt_o(o, optarg);
			break;
		case 'b':
			if (sendmail_opt_b(o, optarg) < 0)
				return -1;
			break;
		case 'q':
			o->mode = 'q';
			break;
		case 'C':
		case 'K':
			o->config = optarg;
			break;
		case 'D':
			o->dir = optarg;
			break;
		case 'H':
			o->mode = 'H';
			return 0;
		case 'B':
		case 'G':
		case 'h':
		case 'L':
		case 'm':
		case 'N':
		case 'n':
		case 'O':
		case 'p':
		case 'R':
		case 'U':
		case 'V':
		case 'X':
			break; /* accepted for compatibility, no effect */
		default:
			return -1;
		}
	}
	return 0;
}

/* The invoking user's login name and full name (GECOS up to the comma). */
static void sendmail_whoami(struct sendmail_job *j)
{
	struct passwd *pw = getpwuid(getuid());
	const char *env = getenv("USER");

	if (pw && pw->pw_name && *pw->pw_name) {
		j->user = xstrdup(pw->pw_name);
		if (pw->pw_gecos && *pw->pw_gecos && *pw->pw_gecos != ',')
			j->gecos = xstrndup(pw->pw_gecos, strcspn(pw->pw_gecos, ","));
	} else if (env && *env) {
		j->user = xstrdup(env);
	} else {
		j->user = xasprintf("uid%u", (unsigned)getuid());
	}
}

/* The envelope sender: -f/-r ("" or "<>" for the null sender), else
 * user@hostname. A bare name gets @hostname. -1 if it is malformed. */
static int sendmail_sender(struct sendmail_job *j)
{
	const char *s = j->o->sender;
	size_t n;

	if (s == NULL) {
		j->env.sender = xasprintf("%s@%s", j->user, j->cfg.hostname);
		return mailmsg_addr_valid(j->env.sender) ? 0 : -1;
	}
	n = strlen(s);
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	if (n == 0) {
		j->env.sender = xstrdup("");
		return 0;
	}
	if (memchr(s, '@', n))
		j->env.sender = xstrndup(s, n);
	else
		j->env.sender = xasprintf("%.*s@%s", (int)n, s, j->cfg.hostname);
	return mailmsg_addr_valid(j->env.sender) ? 0 : -1;
}

/* Collects recipients from the command line and, with -t, the header
 * section. EX_OK or an exit status after a message. */
static int sendmail_collect(struct sendmail_job *j, int argc, char **argv, const char *hdr,
			    size_t hlen)
{
	const char *bad = NULL;

	for (int i = 0; i < argc; i++) {
		if (mailmsg_addrlist(argv[i], &j->rcpts) < 0) {
			fprintf(stderr, "sendmail: %s: malformed address\n", argv[i]);
			return EX_DATAERR;
		}
	}
	if (j->o->extract && mailmsg_recipients(hdr, hlen, &j->rcpts, &bad) < 0) {
		fprintf(stderr, "sendmail: malformed address list in the %s: header\n", bad);
		return EX_DATAERR;
	}
	return EX_OK;
}

/* Checks each recipient, completes bare names with the first local domain,
 * drops duplicates and adds the rest to the envelope. */
static int sendmail_check_rcpts(struct sendmail_job *j)
{
	const char *domain =
	    j->cfg.local_domains.n > 0 ? j->cfg.local_domains.v[0] : j->cfg.hostname;
	struct strlist seen = {NULL, 0};
	int rc = EX_OK;

	for (size_t i = 0; i < j->rcpts.n; i++) {
		const char *r = j->rcpts.v[i];
		char *addr = strchr(r, '@') ? xstrdup(r) : xasprintf("%s@%s", r, domain);
		enum rcpt_class cls =
		    mailmsg_addr_valid(addr) ? recipient_classify(&j->cfg, addr) : RCLASS_INVALID;

		/* An unknown local user is queued too: delivery bounces it to
		 * the sender, and only it (as sendmail and Postfix do). */
		if (cls == RCLASS_INVALID) {
			fprintf(stderr, "sendmail: %s: invalid address\n", r);
			rc = EX_DATAERR;
		} else if (!strlist_has_nocase(&seen, addr)) {
			strlist_add(&seen, addr);
			q_env_add_rcpt(&j->env, addr);
		}
		free(addr);
	}
	strlist_free(&seen);
	if (rc == EX_OK && j->env.nrcpt == 0) {
		fprintf(stderr, "sendmail: no recipients\n");
		rc = EX_USAGE;
	}
	return rc;
}

/* 1 if a display name must be quoted in a From: field. */
static int sendmail_needs_quotes(const char *name)
{
	return strpbrk(name, "()<>[]:;@\\,.\"") != NULL;
}

/* Appends "From: Name <sender>" (or just the address). */
static void sendmail_add_from(struct sendmail_job *j, struct buf *b)
{
	const char *name = j->o->fullname ? j->o->fullname : j->gecos;
	const char *addr = *j->env.sender ? j->env.sender : NULL;
	char *own = NULL;

	if (addr == NULL)
		addr = own = xasprintf("%s@%s", j->user, j->cfg.hostname);
	buf_puts(b, "From: ");
	if (name && *name && !sendmail_needs_quotes(name)) {
		buf_printf(b, "%s <%s>\r\n", name, addr);
	} else if (name && *name) {
		buf_putc(b, '"');
		for (const char *p = name; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_putc(b, '\\');
			if (*p != '\r' && *p != '\n')
				buf_putc(b, *p);
		}
		buf_printf(b, "\" <%s>\r\n", addr);
	} else {
		buf_printf(b, "%s\r\n", addr);
	}
	free(own);
}

/* Builds the header part to store before the body: Received:, the
 * message's own fields without Bcc, then From:, Date:, Message-ID: where
 * missing, and the empty line. Records the Message-ID in the envelope. */
static void sendmail_build_head(struct sendmail_job *j, const char *hdr, size_t hlen)
{
	char *helo = xasprintf("local user %s", j->user);
	const char *for_rcpt = j->env.nrcpt == 1 ? j->env.rcpt[0].addr : NULL;
	char date[64];

	msg_received(&j->head, helo, NULL, j->cfg.hostname, "local", j->env.id, for_rcpt,
		     j->env.created);
	free(helo);
	mailmsg_strip_bcc(hdr, hlen, &j->head);
	if (!mailmsg_has_field(hdr, hlen, "From"))
		sendmail_add_from(j, &j->head);
	if (!mailmsg_has_field(hdr, hlen, "Date")) {
		clock_rfc5322(j->env.created, date, sizeof(date));
		buf_printf(&j->head, "Date: %s\r\n", date);
	}
	j->env.message_id = mailmsg_field_value(hdr, hlen, "Message-ID");
	if (j->env.message_id == NULL || *j->env.message_id == '\0') {
		struct buf id = BUF_INIT;

		free(j->env.message_id);
		msg_make_message_id(&id, j->env.id, j->cfg.hostname);
		buf_printf(&j->head, "Message-ID: %s\r\n", buf_cstr(&id));
		j->env.message_id = buf_steal(&id);
	}
	buf_puts(&j->head, "\r\n");
}

/* Writes the message to the queue, or hands it to the daemon when this
 * user may not write the spool. EX_OK or EX_TEMPFAIL after a message. */
static int sendmail_commit(struct sendmail_job *j, const char *body, size_t blen)
{
	struct iovec iov[2] = {{j->head.data, j->head.len}, {(void *)body, blen}};
	struct queue *q = NULL;
	unsigned long long avail;
	int rc;

	if (j->via_daemon)
		return submit_via_daemon(j->dir, &j->env, &j->head, body, blen, j->env.id,
					 sizeof(j->env.id));
	/* root writing into the daemon's spool writes as its owner, as
	 * Postfix's postdrop does: a root-owned file would be unreadable. */
	if (priv_become_owner_of(j->dir) < 0) {
		fprintf(stderr, "sendmail: cannot become the owner of %s: %s\n", j->dir,
			strerror(errno));
		return EX_TEMPFAIL;
	}
	q = queue_open(j->dir);
	if (q == NULL) {
		fprintf(stderr, "sendmail: cannot open the queue in %s: %s\n", j->dir,
			strerror(errno));
		return EX_TEMPFAIL;
	}
	/* The same floor as SMTP's 452 4.3.1: the daemon must keep room. */
	if (fs_free_bytes(j->dir, &avail) == 0 &&
	    avail < j->cfg.min_free_space + j->head.len + blen) {
		fprintf(stderr, "sendmail: not enough free disk space in %s (%llu bytes free)\n",
			j->dir, avail);
		queue_close(q);
		return EX_TEMPFAIL;
	}
	rc = queue_commit(q, &j->env, iov, 2);
	if (rc != Q_OK) {
		int saved = errno;

		fprintf(stderr, "sendmail: cannot queue the message: %s\n", strerror(saved));
		event_log(EV_QUEUE_WRITE_FAILED,
			  "A message from %s (sendmail) could not be queued: %s", j->env.sender,
			  strerror(saved));
	}
	queue_close(q);
	return rc == Q_OK ? EX_OK : EX_TEMPFAIL;
}

/* After the commit: event, tracking, and a nudge for a running daemon. */
static void sendmail_announce(struct sendmail_job *j)
{
	char reply[64], *kick;
	int sent;

	if (j->via_daemon) { /* the daemon logged and tracked it */
		if (j->o->verbose)
			fprintf(stderr, "sendmail: queued as %s\n", j->env.id);
		return;
	}
	event_log(EV_SUBMITTED_LOCAL,
		  "Message %s from <%s> submitted by local user %s for %zu recipient(s)", j->env.id,
		  j->env.sender, j->user, j->env.nrcpt);
	for (size_t i = 0; i < j->env.nrcpt; i++)
		track(TRK_RECEIVED, j->env.id, j->env.message_id, j->env.sender,
		      j->env.rcpt[i].addr, "local");
	for (size_t i = 0; i < j->env.nrcpt; i++)
		if (recipient_classify(&j->cfg, j->env.rcpt[i].addr) == RCLASS_REMOTE)
			track(TRK_QUEUED_OUTBOUND, j->env.id, j->env.message_id, j->env.sender,
			      j->env.rcpt[i].addr, NULL);
	if (j->o->verbose)
		fprintf(stderr, "sendmail: queued as %s\n", j->env.id);
	/* Naming the message puts it in the daemon's index (and listing) at
	 * once; with no daemon listening, it finds the message when it starts. */
	kick = xasprintf("kick %s", j->env.id);
	sent = control_send(j->dir, kick, reply, sizeof(reply));
	free(kick);
	if (sent < 0 && j->o->verbose)
		fprintf(stderr, "sendmail: no daemon answered; the message waits in the queue\n");
}

/* 1 if this user may write the queue's staging directory (or create it);
 * else the daemon takes the message. */
static int sendmail_may_write(const char *dir)
{
	char *tmp = xasprintf("%s/tmp", dir);
	int ok = 1;

	if (access(tmp, W_OK) < 0 && errno == ENOENT)
		ok = access(dir, W_OK) == 0 || errno != EACCES;
	else if (access(tmp, W_OK) < 0)
		ok = errno != EACCES;
	free(tmp);
	return ok;
}

/* Reads, checks and queues one message. Returns the exit status. */
static int sendmail_submit(struct sendmail_job *j, int argc, char **argv)
{
	const char *m;
	size_t hlen, body;
	int rc;

	rc = mailmsg_read(stdin, j->o->dot_ends, j->cfg.max_message_size, &j->msg);
	if (rc < 0) {
		fprintf(stderr, "sendmail: reading the message: %s\n", strerror(errno));
		return EX_IOERR;
	}
	if (rc > 0) {
		fprintf(stderr, "sendmail: message too big (limit %llu bytes)\n",
			(unsigned long long)j->cfg.max_message_size);
		return EX_DATAERR;
	}
	m = buf_cstr(&j->msg);
	hlen = mailmsg_split(m, j->msg.len, &body);
	if ((rc = sendmail_collect(j, argc, argv, m, hlen)) != EX_OK ||
	    (rc = sendmail_check_rcpts(j)) != EX_OK)
		return rc;
	if (sendmail_sender(j) < 0) {
		fprintf(stderr, "sendmail: %s: malformed sender address\n", j->env.sender);
		return EX_DATAERR;
	}
	j->env.client = xstrdup("local");
	j->env.created = clock_now();
	queue_new_id(j->env.id);
	sendmail_build_head(j, m, hlen);
	/* A user who may not write the spool hands the message to the daemon. */
	j->via_daemon = !sendmail_may_write(j->dir);
	if (!j->via_daemon && event_open(j->dir, j->cfg.diag, 0) < 0)
		log_debug("no event log under %s", j->dir);
	rc = sendmail_commit(j, m + body, j->msg.len - body);
	if (rc == EX_OK)
		sendmail_announce(j);
	event_close();
	return rc;
}

/* Loads the configuration; EX_OK or EX_CONFIG after printing the errors. */
static int sendmail_config(struct sendmail_job *j)
{
	struct buf err = BUF_INIT;
	char *recorded = NULL;
	int rc = EX_OK;

	/* Without --config, use the file of the daemon that serves this spool. */
	if (j->o->config == NULL)
		recorded = config_recorded_path(j->dir);
	/* The secret files are the daemon's: a local user cannot read them. */
	if (config_load_as(&j->cfg, j->o->config ? j->o->config : recorded, 1, &err) < 0) {
		fprintf(stderr, "%s", buf_cstr(&err));
		rc = EX_CONFIG;
	}
	free(recorded);
	buf_free(&err);
	return rc;
}

static void sendmail_job_free(struct sendmail_job *j)
{
	config_free(&j->cfg);
	q_env_free(&j->env);
	buf_free(&j->msg);
	buf_free(&j->head);
	strlist_free(&j->rcpts);
	free(j->user);
	free(j->gecos);
}

/* sendmail -q: ask the daemon for a queue run. */
static int sendmail_runq(const char *dir)
{
	char reply[64];

	if (control_send(dir, "kick", reply, sizeof(reply)) < 0)
		return cli_control_failed("sendmail", dir);
	return EX_OK;
}

static int mailq_list(const char *dir);

/* -bi, newaliases: the aliases are the [aliases] section, read at each
 * start; there is no database to rebuild. */
static int sendmail_newaliases(struct sendmail_job *j)
{
	printf("newaliases: dialmail reads its aliases from the [aliases] section of %s "
	       "(%zu aliases); there is no database to rebuild\n",
	       j->cfg.path ? j->cfg.path : "its configuration", j->cfg.n_aliases);
	return EX_OK;
}

/* -bv: what would become of each recipient; no mail is sent. */
static int sendmail_verify(struct sendmail_job *j, int argc, char **argv)
{
	const char *domain =
	    j->cfg.local_domains.n > 0 ? j->cfg.local_domains.v[0] : j->cfg.hostname;
	int rc = argc > 0 ? EX_OK : EX_USAGE;

	for (int i = 0; i < argc; i++) {
		char *addr =
		    strchr(argv[i], '@') ? xstrdup(argv[i]) : xasprintf("%s@%s", argv[i], domain);
		enum rcpt_class cls =
		    mailmsg_addr_valid(addr) ? recipient_classify(&j->cfg, addr) : RCLASS_INVALID;

		if (cls == RCLASS_LOCAL)
			printf("%s... deliverable: local mailbox\n", addr);
		else if (cls == RCLASS_REMOTE)
			printf("%s... deliverable: relayed (queued for the remote domain)\n", addr);
		else
			printf("%s... undeliverable: %s\n", addr,
			       cls == RCLASS_UNKNOWN_LOCAL ? "User unknown" : "invalid address");
		if (cls == RCLASS_UNKNOWN_LOCAL || cls == RCLASS_INVALID)
			rc = cls == RCLASS_INVALID ? EX_DATAERR : EX_NOUSER;
		free(addr);
	}
	if (argc == 0)
		fprintf(stderr, "sendmail: -bv needs recipients\n");
	return rc;
}

int cmd_sendmail(int argc, char **argv)
{
	struct sendmail_opts o;
	struct sendmail_job j;
	int rc;

	log_init("sendmail", 1, 0);
	if (sendmail_parse(&o, argc, argv) < 0) {
		sendmail_usage(stderr);
		return EX_USAGE;
	}
	if (o.mode == 'H') {
		sendmail_usage(stdout);
		return EX_OK;
	}
	if (o.mode == 'p')
		return mailq_list(config_spool_dir(o.dir));
	if (o.mode == 'q')
		return sendmail_runq(config_spool_dir(o.dir));
	if (o.mode == 's')
		return submit_dialogue(config_spool_dir(o.dir));
	memset(&j, 0, sizeof(j));
	j.o = &o;
	j.dir = config_spool_dir(o.dir);
	sendmail_whoami(&j);
	rc = sendmail_config(&j);
	if (rc == EX_OK && o.mode == 'i')
		rc = sendmail_newaliases(&j);
	else if (rc == EX_OK && o.mode == 'v')
		rc = sendmail_verify(&j, argc - optind, argv + optind);
	else if (rc == EX_OK)
		rc = sendmail_submit(&j, argc - optind, argv + optind);
	sendmail_job_free(&j);
	return rc;
}

/* mailq: Postfix's listing. Only pending recipients are shown, each under
 * its last reply when there is one. */
struct mailq_state {
	struct queue *q;
	unsigned long long bytes;
	int count;
};

static void mailq_print_one(const struct q_env *env)
{
	time_t t = env->created;
	struct tm tm;
	char when[32];
	size_t idlen = strlen(env->id);
	int width = (int)(idlen > 11 ? idlen : 11) + 31; /* the sender's column */

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
	printf("%-11s %8llu %-20s %s\n", env->id, (unsigned long long)env->size, when,
	       *env->sender ? env->sender : "MAILER-DAEMON");
	for (size_t i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		if (env->rcpt[i].last_reply && *env->rcpt[i].last_reply)
			printf("(%s)\n", env->rcpt[i].last_reply);
		printf("%*s%s\n", width, "", env->rcpt[i].addr);
	}
	printf("\n");
}

static int mailq_one(const char *id, void *arg)
{
	struct mailq_state *st = arg;
	struct q_env env;

	if (queue_load(st->q, id, &env, NULL) != Q_OK)
		return 0; /* delivered and removed meanwhile, or damaged */
	if (st->count++ == 0)
		printf("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
	st->bytes += env.size;
	mailq_print_one(&env);
	q_env_free(&env);
	return 0;
}

static int mailq_list(const char *dir)
{
	struct mailq_state st = {NULL, 0, 0};
	char *qdir = xasprintf("%s/queue", dir);
	struct stat sb;
	int missing = stat(qdir, &sb) < 0 && errno == ENOENT;

	free(qdir);
	if (!missing && (st.q = queue_open(dir)) == NULL) {
		fprintf(stderr, "mailq: cannot open the queue in %s: %s\n", dir, strerror(errno));
		return EX_TEMPFAIL;
	}
	if (st.q)
		queue_scan(st.q, mailq_one, &st);
	queue_close(st.q);
	if (st.count == 0) {
		printf("Mail queue is empty\n");
		return EX_OK;
	}
	printf("-- %llu Kbytes in %d Request%s.\n", (st.bytes + 1023) / 1024, st.count,
	       st.count == 1 ? "" : "s");
	return EX_OK;
}

int cmd_mailq(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "+C:v", longopts, NULL)) != -1) {
		switch (c) {
		case 'D':
			dir = optarg;
			break;
		case 'H':
			printf("usage: mailq [--dir DIR]\n");
			return EX_OK;
		case 'C':
		case 'v':
			break;
		default:
			fprintf(stderr, "usage: mailq [--dir DIR]\n");
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "usage: mailq [--dir DIR]\n");
		return EX_USAGE;
	}
	return mailq_list(config_spool_dir(dir));
}
