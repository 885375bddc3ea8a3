/* dialmail queue: list the queue (a table or JSON) and show one message.
 * Invariant: only reads; nothing in the state directory is created, moved
 * or changed (except that queue_load moves a damaged file to corrupt/). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli/cli.h"
#include "mail/config.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/xmalloc.h"
#include "daemon/control.h"
#include "lib/duration.h"
#include "queue/qindex.h"
#include "queue/queue.h"

/* Every message's envelope that passes the filter, oldest first. */
struct cli_queue_list {
	struct queue *q;
	struct q_env *env;
	size_t n;
	const struct qindex_filter *f;
	size_t cap; /* of env */
};

/* What `dialmail queue` was asked. */
struct cli_queue_opts {
	int json, count;
	struct qindex_filter f;
};

static const char *cli_queue_rcpt_state(enum rcpt_state s)
{
	switch (s) {
	case RCPT_PENDING:
		return "pending";
	case RCPT_DELIVERED:
		return "delivered";
	case RCPT_FAILED:
		return "failed";
	}
	return "unknown";
}

/* The state of a whole message from its recipients' states. */
static const char *cli_queue_msg_state(const struct q_env *env)
{
	size_t pending = 0, delivered = 0, failed = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].state == RCPT_PENDING)
			pending++;
		else if (env->rcpt[i].state == RCPT_DELIVERED)
			delivered++;
		else
			failed++;
	}
	if (pending > 0)
		return delivered + failed > 0 ? "partly delivered" : "pending";
	if (failed > 0)
		return delivered > 0 ? "partly failed" : "failed";
	return "delivered";
}

/* "42s", "5m", "2h", "3d". */
static void cli_queue_age(long long secs, char *out, size_t outlen)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(out, outlen, "%llds", secs);
	else if (secs < 3600)
		snprintf(out, outlen, "%lldm", secs / 60);
	else if (secs < 86400)
		snprintf(out, outlen, "%lldh", secs / 3600);
	else
		snprintf(out, outlen, "%lldd", secs / 86400);
}

/* "812", "4.2K", "17M". */
static void cli_queue_size(unsigned long long n, char *out, size_t outlen)
{
	if (n < 1024)
		snprintf(out, outlen, "%llu", n);
	else if (n < 10 * 1024)
		snprintf(out, outlen, "%.1fK", n / 1024.0);
	else if (n < 1024 * 1024)
		snprintf(out, outlen, "%lluK", n / 1024);
	else
		snprintf(out, outlen, "%.1fM", n / (1024.0 * 1024.0));
}

/* Room for one more envelope at l->env[l->n] (the array doubles: a
 * listing may hold 100,000). */
static struct q_env *cli_queue_slot(struct cli_queue_list *l)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->env = xrealloc(l->env, l->cap * sizeof(*l->env));
	}
	return &l->env[l->n];
}

static int cli_queue_collect(const char *id, void *arg)
{
	struct cli_queue_list *l = arg;
	struct q_env env;

	if (queue_load_envelope(l->q, id, &env) != Q_OK)
		return 0; /* removed meanwhile, or damaged (moved aside) */
	/* The load put it in the queue's index, whose filter we use. */
	if (!qindex_matches(queue_index(l->q), id, l->f)) {
		q_env_free(&env);
		return 0;
	}
	*cli_queue_slot(l) = env;
	l->n++;
	return 0;
}

int cli_queue_open(const char *dir, struct queue **q)
{
	char *qdir = xasprintf("%s/queue", dir);
	struct stat sb;
	int missing = stat(qdir, &sb) < 0 && errno == ENOENT;

	free(qdir);
	*q = NULL;
	if (missing)
		return 0;
	if ((*q = queue_open(dir)) == NULL) {
		fprintf(stderr, "dialmail: cannot open the queue in %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void cli_queue_list_free(struct cli_queue_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		q_env_free(&l->env[i]);
	free(l->env);
	queue_close(l->q);
}

/* A JSON string; bytes that are not UTF-8 (a queue file may hold any
 * octets) become '?' rather than dropping the field. NULL gives null. */
static json_t *cli_queue_str(const char *s)
{
	json_t *v;
	char *copy;

	if (s == NULL)
		return json_null();
	if ((v = json_string(s)) != NULL)
		return v;
	copy = xstrdup(s);
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v;
}

static json_t *cli_queue_time_json(time_t t)
{
	char s[64];

	if (t == 0)
		return json_null();
	clock_iso8601((int64_t)t * 1000000, s, sizeof(s));
	return json_string(s);
}

static json_t *cli_queue_env_json(const struct q_env *env, time_t now)
{
	json_t *o = json_object(), *rcpts = json_array();

	json_object_set_new(o, "id", cli_queue_str(env->id));
	json_object_set_new(o, "created", cli_queue_time_json(env->created));
	json_object_set_new(o, "age_seconds", json_integer((json_int_t)(now - env->created)));
	json_object_set_new(o, "size", json_integer((json_int_t)env->size));
	json_object_set_new(o, "sender", cli_queue_str(env->sender ? env->sender : ""));
	json_object_set_new(o, "client", cli_queue_str(env->client));
	json_object_set_new(o, "helo", cli_queue_str(env->helo));
	json_object_set_new(o, "message_id", cli_queue_str(env->message_id));
	json_object_set_new(o, "state", json_string(cli_queue_msg_state(env)));
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct q_rcpt *r = &env->rcpt[i];
		json_t *jr = json_object();

		json_object_set_new(jr, "addr", cli_queue_str(r->addr));
		json_object_set_new(jr, "state", json_string(cli_queue_rcpt_state(r->state)));
		json_object_set_new(jr, "attempts", json_integer(r->attempts));
		json_object_set_new(jr, "next_attempt", cli_queue_time_json(r->next_attempt));
		json_object_set_new(jr, "last_reply", cli_queue_str(r->last_reply));
		json_array_append_new(rcpts, jr);
	}
	json_object_set_new(o, "recipients", rcpts);
	return o;
}

/* v as text (indent 2, keys in order), v freed; NULL said on stderr. */
static char *cli_queue_encode(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	json_decref(v);
	if (s == NULL)
		fprintf(stderr, "dialmail: cannot encode the queue as JSON\n");
	return s;
}

/* Prints a JSON value and a newline; 0, or 1 if it could not be encoded. */
static int cli_queue_dump(json_t *v)
{
	char *s = cli_queue_encode(v);

	if (s == NULL)
		return 1;
	printf("%s\n", s);
	free(s);
	return 0;
}

/* The listing as one JSON array, printed as json_dumps would print it
 * whole (indent 2) but one message at a time: 100,000 messages as one tree
 * of JSON values cost seconds of allocation. 0, or 1 if one could not be
 * encoded. */
static int cli_queue_json_array(const struct cli_queue_list *l, time_t now)
{
	if (l->n == 0) {
		printf("[]\n");
		return 0;
	}
	fputs("[\n", stdout);
	for (size_t i = 0; i < l->n; i++) {
		char *s = cli_queue_encode(cli_queue_env_json(&l->env[i], now));

		if (s == NULL)
			return 1;
		fputs("  ", stdout);
		for (const char *p = s, *nl; *p; p = nl + 1) {
			if ((nl = strchr(p, '\n')) == NULL) {
				fputs(p, stdout);
				break;
			}
			fwrite(p, 1, (size_t)(nl - p) + 1, stdout);
			fputs("  ", stdout);
		}
		fputs(i + 1 < l->n ? ",\n" : "\n", stdout);
		free(s);
	}
	fputs("]\n", stdout);
	return 0;
}

/* The RECIPIENTS column: up to two addresses, else the first and a count. */
static void cli_queue_rcpt_column(const struct q_env *env, struct buf *out)
{
	if (env->nrcpt == 0)
		return;
	if (env->nrcpt <= 2) {
		buf_puts(out, env->rcpt[0].addr);
		if (env->nrcpt == 2)
			buf_printf(out, ", %s", env->rcpt[1].addr);
		return;
	}
	buf_printf(out, "%s +%zu more", env->rcpt[0].addr, env->nrcpt - 1);
}

static void cli_queue_table(const struct cli_queue_list *l, time_t now)
{
	if (l->n == 0) {
		printf("Queue is empty\n");
		return;
	}
	printf("%-22s %5s %6s %-30s %-40s %s\n", "ID", "AGE", "SIZE", "SENDER", "RECIPIENTS",
	       "STATE");
	for (size_t i = 0; i < l->n; i++) {
		const struct q_env *env = &l->env[i];
		struct buf rc = BUF_INIT;
		char age[32], size[32];

		cli_queue_age((long long)(now - env->created), age, sizeof(age));
		cli_queue_size(env->size, size, sizeof(size));
		cli_queue_rcpt_column(env, &rc);
		printf("%-22s %5s %6s %-30s %-40s %s\n", env->id, age, size,
		       env->sender && *env->sender ? env->sender : "<>", buf_cstr(&rc),
		       cli_queue_msg_state(env));
		buf_free(&rc);
	}
	printf("%zu message%s\n", l->n, l->n == 1 ? "" : "s");
}

/* The daemon's configuration (as it recorded it), for what a filter on
 * routes and held domains needs; embedded defaults if none is recorded. */
static void cli_queue_config(const char *dir, struct config *cfg, struct queue *q)
{
	char *path = config_recorded_path(dir);
	struct buf err = BUF_INIT;

	if (config_load(cfg, path, &err) == 0)
		qindex_set_config(queue_index(q), cfg);
	else
		fprintf(stderr, "dialmail: %s", buf_cstr(&err));
	buf_free(&err);
	free(path);
}

/* The filter as control-socket words, after verb ("queue-count"...). */
static void cli_queue_filter_cmd(const char *verb, const struct qindex_filter *f, struct buf *cmd)
{
	static const char *const states[] = {"any", "held", "deferred", "new"};

	buf_printf(cmd, "%s state=%s", verb, states[f->state]);
	if (f->domain)
		buf_printf(cmd, " domain=%s", f->domain);
	if (f->link)
		buf_printf(cmd, " link=%s", f->link);
	if (f->older_than)
		buf_printf(cmd, " older=%lld", (long long)f->older_than);
}

/* Where a listing from the daemon is. */
struct cli_queue_stream {
	struct cli_queue_list *l;
	int state; /* 0 before "ok", 1 after it, 2 after "end", -1 refused or garbled */
};

static int cli_queue_on_line(const char *line, void *arg)
{
	struct cli_queue_stream *st = arg;
	struct cli_queue_list *l = st->l;
	char *copy;

	if (st->state == 0) {
		st->state = strcmp(line, "ok") == 0 ? 1 : -1;
		return st->state < 0;
	}
	if (strcmp(line, "end") == 0) {
		st->state = 2;
		return 1;
	}
	copy = xstrdup(line);
	if (qindex_row_parse(copy, cli_queue_slot(l)) == 0)
		l->n++;
	else
		st->state = -1;
	free(copy);
	return st->state < 0;
}

static int cli_queue_env_cmp(const void *a, const void *b)
{
	return strcmp(((const struct q_env *)a)->id, ((const struct q_env *)b)->id);
}

/* The listing from the running daemon's index; -1 (nothing in l) if no
 * daemon answers, it is still reading its queue, or the stream broke. */
static int cli_queue_from_daemon(const char *dir, struct cli_queue_list *l)
{
	struct cli_queue_stream st = {l, 0};
	struct buf cmd = BUF_INIT;

	cli_queue_filter_cmd("queue-list", l->f, &cmd);
	control_stream(dir, buf_cstr(&cmd), cli_queue_on_line, &st);
	buf_free(&cmd);
	if (st.state != 2) {
		for (size_t i = 0; i < l->n; i++)
			q_env_free(&l->env[i]);
		l->n = 0;
		return -1;
	}
	/* Ids start with the arrival time in hex: as queue_scan, oldest first. */
	if (l->n > 1)
		qsort(l->env, l->n, sizeof(*l->env), cli_queue_env_cmp);
	return 0;
}

/* The listing from the queue files (no daemon, or one that cannot answer). */
static int cli_queue_from_disk(const char *dir, struct cli_queue_list *l, struct config *cfg)
{
	if (cli_queue_open(dir, &l->q) < 0)
		return 1;
	if (l->q)
		cli_queue_config(dir, cfg, l->q);
	if (l->q && queue_scan(l->q, cli_queue_collect, l) < 0) {
		fprintf(stderr, "dialmail: cannot read the queue in %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	return 0;
}

static int cli_queue_list(const char *dir, const struct cli_queue_opts *o)
{
	struct cli_queue_list l = {NULL, NULL, 0, &o->f, 0};
	struct config cfg;
	time_t now = clock_now();
	int rc = 0;

	memset(&cfg, 0, sizeof(cfg));
	if (cli_queue_from_daemon(dir, &l) < 0)
		rc = cli_queue_from_disk(dir, &l, &cfg);
	if (rc == 0 && o->count) {
		printf("%zu\n", l.n);
	} else if (rc == 0 && o->json) {
		rc = cli_queue_json_array(&l, now);
	} else if (rc == 0) {
		cli_queue_table(&l, now);
	}
	cli_queue_list_free(&l);
	config_free(&cfg);
	return rc;
}

/* --count with a daemon running: its index answers. 0 printed, 1 no
 * daemon (or one that cannot answer: count from disk instead). */
static int cli_queue_count_daemon(const char *dir, const struct qindex_filter *f)
{
	struct buf cmd = BUF_INIT;
	char reply[128];
	int rc = 1;

	cli_queue_filter_cmd("queue-count", f, &cmd);
	if (control_send(dir, buf_cstr(&cmd), reply, sizeof(reply)) == 0 &&
	    strncmp(reply, "ok ", 3) == 0) {
		printf("%u\n", (unsigned)strtoul(reply + 3, NULL, 10));
		if (strstr(reply, "recovering"))
			fprintf(stderr,
				"dialmail: the daemon is still reading its queue; the count "
				"will grow\n");
		rc = 0;
	}
	buf_free(&cmd);
	return rc;
}

/* The header section of a wire-form message, printed with LF line ends. */
static void cli_queue_print_headers(const struct buf *content)
{
	const char *p = content->data ? content->data : "", *end = p + content->len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);

		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		fwrite(p, 1, n, stdout);
		putchar('\n');
		p = eol ? eol + 1 : end;
	}
}

static void cli_queue_show_text(const struct q_env *env, const struct buf *content, time_t now)
{
	char created[64], age[32];

	clock_iso8601((int64_t)env->created * 1000000, created, sizeof(created));
	cli_queue_age((long long)(now - env->created), age, sizeof(age));
	printf("id:         %s\n", env->id);
	printf("created:    %s (%s ago)\n", created, age);
	printf("size:       %llu bytes\n", (unsigned long long)env->size);
	printf("sender:     <%s>\n", env->sender ? env->sender : "");
	printf("client:     %s\n", env->client ? env->client : "-");
	printf("helo:       %s\n", env->helo ? env->helo : "-");
	printf("message-id: %s\n", env->message_id ? env->message_id : "-");
	printf("state:      %s\n", cli_queue_msg_state(env));
	printf("recipients:\n");
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct q_rcpt *r = &env->rcpt[i];
		char next[64] = "now";

		if (r->next_attempt)
			clock_iso8601((int64_t)r->next_attempt * 1000000, next, sizeof(next));
		printf("  %-40s %-9s attempts %d, next %s\n", r->addr,
		       cli_queue_rcpt_state(r->state), r->attempts,
		       r->state == RCPT_PENDING ? next : "-");
		if (r->last_reply && *r->last_reply)
			printf("    last reply: %s\n", r->last_reply);
	}
	printf("\nheaders:\n");
	cli_queue_print_headers(content);
}

static int cli_queue_show(const char *dir, const char *id, int json)
{
	struct queue *q = NULL;
	struct q_env env;
	struct buf content = BUF_INIT;
	int rc = 1;

	if (!queue_id_valid(id)) {
		fprintf(stderr, "dialmail: '%s' is not a queue id\n", id);
		return 1;
	}
	if (cli_queue_open(dir, &q) < 0)
		return 1;
	if (q == NULL || queue_load(q, id, &env, &content) != Q_OK) {
		fprintf(stderr, "dialmail: no message %s in the queue in %s\n", id, dir);
		goto out;
	}
	if (json)
		rc = cli_queue_dump(cli_queue_env_json(&env, clock_now()));
	else
		cli_queue_show_text(&env, &content, clock_now());
	if (!json)
		rc = 0;
	q_env_free(&env);
out:
	buf_free(&content);
	queue_close(q);
	return rc;
}

/* The spool directory must exist (a spool whose daemon never ran has no
 * queue yet: that is an empty queue, not an error). 0, or -1 said on stderr. */
static int cli_queue_spool_exists(const char *dir)
{
	struct stat sb;
	const char *why = NULL;

	if (stat(dir, &sb) < 0)
		why = strerror(errno);
	else if (!S_ISDIR(sb.st_mode))
		why = "not a directory";
	if (why == NULL)
		return 0;
	fprintf(stderr, "dialmail queue: %s: %s (the spool directory: --dir or DIALMAIL_DIR)\n",
		dir, why);
	return -1;
}

static void cli_queue_usage(FILE *out)
{
	fprintf(out,
		"usage: dialmail queue [--dir DIR] [--json] [--count] [--domain D] [--route LINK]\n"
		"                      [--state held|deferred|new] [--older-than DURATION]\n"
		"       dialmail queue show ID [--dir DIR] [--json]\n");
}

int cmd_queue(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},
	    {"count", no_argument, NULL, 'n'},
	    {"domain", required_argument, NULL, 'D'},
	    {"route", required_argument, NULL, 'r'},
	    {"state", required_argument, NULL, 's'},
	    {"older-than", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	struct cli_queue_opts o;
	long long age;
	int c;

	memset(&o, 0, sizeof(o));
	while ((c = getopt_long(argc, argv, "d:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'n':
			o.count = 1;
			break;
		case 'D':
			o.f.domain = optarg;
			break;
		case 'r':
			o.f.link = optarg;
			break;
		case 's':
			if ((o.f.state = qindex_state_parse(optarg)) < 0) {
				fprintf(stderr, "dialmail: --state: held, deferred, new or any\n");
				return 64;
			}
			break;
		case 'o':
			if ((age = duration_parse(optarg, 100LL * 365 * 86400)) < 0) {
				fprintf(stderr,
					"dialmail: --older-than: a duration (30m, 2h, 3d)\n");
				return 64;
			}
			o.f.older_than = clock_now() - (time_t)age;
			break;
		case 'h':
			cli_queue_usage(stdout);
			return 0;
		default:
			cli_queue_usage(stderr);
			return 64;
		}
	}
	argc -= optind;
	argv += optind;
	dir = config_spool_dir(dir);
	if (cli_queue_spool_exists(dir) < 0)
		return 66; /* EX_NOINPUT */
	if (o.count && argc == 0 && cli_queue_count_daemon(dir, &o.f) == 0)
		return 0;
	if (argc == 0 || (argc == 1 && strcmp(argv[0], "list") == 0))
		return cli_queue_list(dir, &o);
	if (argc == 2 && strcmp(argv[0], "show") == 0)
		return cli_queue_show(dir, argv[1], o.json);
	cli_queue_usage(stderr);
	return 64;
}
