/* smtpc: test driver for the SMTP client engine. Loads every message of a
 * dialmail queue directory and sends its pending recipients over one
 * connection to HOST:PORT or unix:PATH (SMTP, or LMTP with --lmtp), printing
 * one JSON line per recipient and one for the session. It never changes the
 * queue. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"
#include "smtp/smtp_client.h"

struct job {
	struct queue *q;
	struct smtpc_msg *msgs;
	struct q_env *envs;
	struct buf *contents;
	size_t **idx;
	size_t n, cap;
	int rc;
};

static const char *smtpc_status_name(int st)
{
	return st == Q_OK ? "ok" : st == Q_PERMFAIL ? "permfail" : "tempfail";
}

__attribute__((noreturn)) static void smtpc_usage(void)
{
	fprintf(stderr, "usage: smtpc --dir DIR [--tls none|opportunistic|required] [--ca FILE]\n"
			"             [--servername NAME] [--no-verify] [--fingerprint SHA256]\n"
			"             [--auth user:pass] [--auth-plaintext] [--no-chunking]\n"
			"             [--no-pipelining] [--max-messages N] [--helo NAME]\n"
			"             [--lmtp] [--tls-session FILE] [--early-ehlo]\n"
			"             [--timeout PHASE=MS]...\n"
			"             HOST:PORT|unix:PATH\n");
	exit(2);
}

/* Collects one queued message with its pending recipients. */
static int smtpc_collect(const char *id, void *arg)
{
	struct job *j = arg;
	size_t k, np = 0;

	if (j->n == j->cap) {
		j->cap = j->cap ? j->cap * 2 : 16;
		j->envs = xrealloc(j->envs, j->cap * sizeof(*j->envs));
		j->contents = xrealloc(j->contents, j->cap * sizeof(*j->contents));
		j->idx = xrealloc(j->idx, j->cap * sizeof(*j->idx));
	}
	k = j->n;
	buf_init(&j->contents[k]);
	if (queue_load(j->q, id, &j->envs[k], &j->contents[k]) != Q_OK) {
		buf_free(&j->contents[k]);
		return 0;
	}
	j->idx[k] = xcalloc(j->envs[k].nrcpt + 1, sizeof(size_t));
	for (size_t r = 0; r < j->envs[k].nrcpt; r++)
		if (j->envs[k].rcpt[r].state == RCPT_PENDING)
			j->idx[k][np++] = r;
	if (np == 0) {
		q_env_free(&j->envs[k]);
		buf_free(&j->contents[k]);
		free(j->idx[k]);
		return 0;
	}
	j->n++;
	return 0;
}

/* A JSON string; server text that is not UTF-8 must not drop the field. */
static json_t *smtpc_jstr(const char *s)
{
	json_t *j = json_string(s ? s : "");

	return j ? j : json_string("(reply not in UTF-8)");
}

static void smtpc_print_msg(struct smtpc_msg *m)
{
	for (size_t r = 0; r < m->nres; r++) {
		json_t *o = json_object();
		char *s;

		json_object_set_new(o, "id", smtpc_jstr(m->env->id));
		json_object_set_new(o, "rcpt", json_string(m->env->rcpt[m->rcpt_idx[r]].addr));
		json_object_set_new(o, "status", json_string(smtpc_status_name(m->res[r].status)));
		json_object_set_new(o, "reply", smtpc_jstr(m->res[r].reply));
		json_object_set_new(o, "message_status", json_string(smtpc_status_name(m->status)));
		json_object_set_new(o, "message_reply", smtpc_jstr(m->reply));
		json_object_set_new(o, "attempted", json_boolean(m->attempted));
		json_object_set_new(o, "data_sent", json_boolean(m->data_sent));
		json_object_set_new(o, "eightbit_unannounced",
				    json_boolean(m->eightbit_unannounced));
		s = json_dumps(o, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	}
}

static void smtpc_done(struct smtpc *c, const struct smtpc_session_result *r, void *arg)
{
	struct job *j = arg;
	json_t *o = json_object();
	char *s;

	for (size_t i = 0; i < j->n; i++)
		smtpc_print_msg(&j->msgs[i]);
	json_object_set_new(o, "session", json_string(smtpc_status_name(r->status)));
	json_object_set_new(o, "cause", json_string(smtpc_cause_name(r->cause)));
	json_object_set_new(o, "text", smtpc_jstr(r->text));
	json_object_set_new(o, "remote_mta", smtpc_jstr(r->remote_mta));
	json_object_set_new(o, "tls", json_boolean(r->tls));
	json_object_set_new(o, "tls_info", smtpc_jstr(r->tls_info));
	json_object_set_new(o, "tls_resumed", json_boolean(r->tls_resumed));
	json_object_set_new(o, "peer_dialmail", json_boolean(r->peer_dialmail));
	json_object_set_new(o, "authenticated", json_boolean(r->authenticated));
	json_object_set_new(o, "waits", json_integer((json_int_t)r->waits));
	json_object_set_new(o, "messages_ok", json_integer((json_int_t)r->messages_ok));
	s = json_dumps(o, JSON_COMPACT);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
	j->rc = r->status == Q_OK ? 0 : 1;
}

static int smtpc_timeout_opt(struct smtpc_timeouts *t, const char *arg)
{
	static const char *const names[] = {"connect",	"banner", "helo",      "tls",
					    "mail",	"rcpt",	  "data_init", "data_block",
					    "data_end", "quit"};
	int *fields[] = {&t->connect, &t->banner,    &t->helo,	     &t->tls,	   &t->mail,
			 &t->rcpt,    &t->data_init, &t->data_block, &t->data_end, &t->quit};
	const char *eq = strchr(arg, '=');

	for (size_t i = 0; eq && i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == (size_t)(eq - arg) && !strncmp(arg, names[i], eq - arg)) {
			*fields[i] = atoi(eq + 1);
			return 0;
		}
	return -1;
}

static enum smtpc_tls_policy smtpc_tls_opt(const char *s)
{
	if (!strcmp(s, "none"))
		return SMTPC_TLS_NONE;
	if (!strcmp(s, "opportunistic"))
		return SMTPC_TLS_OPPORTUNISTIC;
	if (!strcmp(s, "required"))
		return SMTPC_TLS_REQUIRED;
	smtpc_usage();
}

static void smtpc_parse_args(int argc, char **argv, struct smtpc_options *o, const char **dir,
			     int *no_verify)
{
	static const struct option lo[] = {{"dir", 1, 0, 'd'},
					   {"tls", 1, 0, 't'},
					   {"ca", 1, 0, 'c'},
					   {"servername", 1, 0, 's'},
					   {"no-verify", 0, 0, 'V'},
					   {"fingerprint", 1, 0, 'f'},
					   {"auth", 1, 0, 'a'},
					   {"auth-plaintext", 0, 0, 'P'},
					   {"no-chunking", 0, 0, 'C'},
					   {"no-pipelining", 0, 0, 'N'},
					   {"max-messages", 1, 0, 'm'},
					   {"helo", 1, 0, 'h'},
					   {"timeout", 1, 0, 'T'},
					   {"lmtp", 0, 0, 'L'},
					   {"tls-session", 1, 0, 'S'},
					   {"early-ehlo", 0, 0, 'E'},
					   {0, 0, 0, 0}};
	int ch;
	char *colon;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			*dir = optarg;
			break;
		case 't':
			o->tls = smtpc_tls_opt(optarg);
			break;
		case 'c':
			o->ca_file = optarg;
			break;
		case 's':
			o->server_name = optarg;
			break;
		case 'V':
			*no_verify = 1;
			break;
		case 'f':
			o->fingerprint = optarg;
			break;
		case 'a':
			if ((colon = strchr(optarg, ':')) == NULL)
				smtpc_usage();
			*colon = '\0';
			o->auth_user = optarg;
			o->auth_pass = colon + 1;
			break;
		case 'P':
			o->auth_plaintext_ok = 1;
			break;
		case 'C':
			o->no_chunking = 1;
			break;
		case 'N':
			o->no_pipelining = 1;
			break;
		case 'm':
			o->max_messages = (size_t)atol(optarg);
			break;
		case 'h':
			o->helo_name = optarg;
			break;
		case 'L':
			o->lmtp = 1;
			break;
		case 'S':
			o->tls_session = optarg;
			break;
		case 'E':
			o->early_ehlo = 1;
			break;
		case 'T':
			if (smtpc_timeout_opt(&o->t, optarg) < 0)
				smtpc_usage();
			break;
		default:
			smtpc_usage();
		}
	}
}

int main(int argc, char **argv)
{
	struct smtpc_options o = {.helo_name = "client.test", .tls = SMTPC_TLS_NONE};
	struct job j = {.rc = 1};
	const char *dir = NULL;
	struct event_base *base;
	struct smtpc *c;
	int no_verify = 0;

	log_init("smtpc", 1, 0);
	smtpc_parse_args(argc, argv, &o, &dir, &no_verify);
	if (dir == NULL || optind != argc - 1)
		smtpc_usage();
	/* Verification by default when TLS is required, unless only pinned. */
	o.tls_verify = o.tls == SMTPC_TLS_REQUIRED && !no_verify &&
		       (o.fingerprint == NULL || o.ca_file != NULL);
	if ((j.q = queue_open(dir)) == NULL)
		fatal("smtpc: cannot open queue %s", dir);
	queue_scan(j.q, smtpc_collect, &j);
	j.msgs = xcalloc(j.n + 1, sizeof(*j.msgs));
	for (size_t i = 0; i < j.n; i++) {
		j.msgs[i].env = &j.envs[i];
		j.msgs[i].content = &j.contents[i];
		j.msgs[i].rcpt_idx = j.idx[i];
		for (size_t r = 0; r < j.envs[i].nrcpt; r++)
			if (j.envs[i].rcpt[r].state == RCPT_PENDING)
				j.msgs[i].nrcpt_idx++;
	}
	base = event_base_new();
	c = smtpc_new(base, &o, j.msgs, j.n, smtpc_done, &j);
	if (smtpc_connect(c, argv[optind]) < 0)
		fatalx("smtpc: %s: not a numeric host:port nor unix:PATH", argv[optind]);
	event_base_dispatch(base);
	smtpc_free(c);
	for (size_t i = 0; i < j.n; i++) {
		q_env_free(&j.envs[i]);
		buf_free(&j.contents[i]);
		free(j.idx[i]);
	}
	free(j.msgs);
	free(j.envs);
	free(j.contents);
	free(j.idx);
	queue_close(j.q);
	event_base_free(base);
	return j.rc;
}
