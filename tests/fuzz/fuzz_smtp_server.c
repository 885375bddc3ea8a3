/* Fuzzes the SMTP server as a client would: the input is the client's side
 * of one session, bytes as on the wire (commands, DATA, BDAT chunks, AUTH
 * answers), fed to a real server session over a bufferevent pair and ended
 * by EOF. Covers the command reader and dispatcher, the path and parameter
 * checks, the DATA end-of-data scanner, BDAT chunking, AUTH, ETRN and the
 * group commit into a real queue (in a temp directory; messages removed as
 * soon as they are queued). Checks the replies' form, and that what was
 * queued reads back with CRLF lines only, no NUL, none over 1000 octets.
 * No production hook: smtp_server_adopt is the public way to run a session
 * on a connected bufferevent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common.h"
#include "daemon/modules.h"
#include "lib/buf.h"
#include "mail/config.h"
#include "queue/queue.h"
#include "smtp/smtp_server.h"

static struct event_base *base;
static struct config cfg;
static struct queue *q;
static struct smtp_server *srv;

/* What the server promises of queued content, DATA or BDAT alike: CRLF line
 * ends only, no NUL, no line over 1000 octets with its CRLF (the next hop
 * may send it with DATA). */
static void check_content(const struct buf *c)
{
	size_t line = 0;

	for (size_t i = 0; i < c->len; i++) {
		char ch = c->data[i];

		if (ch == '\0' || (ch == '\r' && (i + 1 == c->len || c->data[i + 1] != '\n')) ||
		    (ch == '\n' && (i == 0 || c->data[i - 1] != '\r')))
			abort();
		line = ch == '\n' ? 0 : line + 1;
		if (line > 999)
			abort();
	}
}

static void on_commit(const char *qid, int inbound, void *arg)
{
	struct q_env env;
	struct buf content = BUF_INIT;

	if (queue_load(q, qid, &env, &content) != Q_OK)
		abort(); /* "250 queued" for a message the queue cannot read */
	check_content(&content);
	q_env_free(&env);
	buf_free(&content);
	queue_remove(q, qid); /* keep the temp directory small */
}

static void on_close(int quit, void *arg)
{
	*(int *)arg = 1;
}

static void etrn(const char *client, const char *user, const char *param, struct buf *reply,
		 void *arg)
{
	buf_printf(reply, "250 2.0.0 Queuing for %s started", param);
}

/* Every reply line the client reads is "DDD text" or "DDD-text" with a
 * code from 200 to 599, ends in CRLF and fits 512 octets (RFC 5321
 * 4.5.3.1.5); complete lines are checked and dropped as they come. */
static void client_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		if (len < 4 || len > 511 || line[len - 1] != '\r' || line[0] < '2' ||
		    line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' ||
		    line[2] > '9' || (line[3] != ' ' && line[3] != '-') ||
		    memchr(line, '\r', len - 1) != NULL || memchr(line, '\0', len) != NULL) {
			fprintf(stderr, "fuzz: bad reply line (%zu octets): %.*s\n", len, (int)len,
				line);
			abort();
		}
		free(line);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct buf err = BUF_INIT;
	char conf[1024];
	const char *users;

	fuzz_quiet();
	modules_register();
	users = fuzz_write_file("users", "alice {PLAIN}secret\n", 20);
	snprintf(conf, sizeof(conf),
		 "hostname = mx.example.org\n"
		 "local_domains = example.org\n"
		 "local_recipients = alice, bob\n"
		 "mynetworks = 127.0.0.0/8\n"
		 "max_message_size = 4096\n"
		 "max_recipients = 5\n"
		 "smtp_timeout = 5s\n"
		 "smtp_data_timeout = 5s\n"
		 "auth_users_file = %s\n"
		 "auth_allow_plaintext = yes\n"
		 "hold_domains = held.example\n"
		 "[aliases]\n"
		 "sales = alice, bob\n",
		 users);
	if (config_load(&cfg, fuzz_write_file("dialmail.conf", conf, strlen(conf)), &err) < 0) {
		fprintf(stderr, "fuzz: config: %s\n", buf_cstr(&err));
		abort();
	}
	buf_free(&err);
	base = event_base_new();
	q = queue_open(fuzz_tmpdir());
	if (base == NULL || q == NULL)
		abort();
	srv = smtp_server_new(base, &cfg, q, on_commit, NULL);
	smtp_server_set_etrn(srv, etrn, NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bufferevent *pair[2];
	int done = 0;

	if (bufferevent_pair_new(base, 0, pair) < 0)
		abort();
	bufferevent_setcb(pair[0], client_read, NULL, NULL, NULL);
	bufferevent_enable(pair[0], EV_READ | EV_WRITE);
	smtp_server_adopt(srv, pair[1], "192.0.2.1", 0, on_close, &done);
	bufferevent_write(pair[0], data, size);
	bufferevent_flush(pair[0], EV_WRITE, BEV_FINISHED); /* EOF: the session ends */
	while (!done)
		event_base_loop(base, EVLOOP_ONCE);
	if (evbuffer_get_length(bufferevent_get_input(pair[0])) != 0)
		abort(); /* a reply without its line end */
	bufferevent_free(pair[0]);
	return 0;
}
