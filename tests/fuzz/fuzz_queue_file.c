/* Fuzzes the queue file reader (queue/queue_file.c): the input is a queue
 * file image, optionally followed by a state file image (from its
 * "DIALMAIL-STATE" magic on). Checks the reader's promises: a parsed file's
 * content lies inside the image; what the writer makes of a parsed
 * envelope and content parses again to the same envelope; the envelope
 * reader agrees with the full reader and asks for more only on a prefix;
 * a state image applies all or nothing, and its own format reads back. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lib/buf.h"
#include "queue/queue.h"
#include "queue/queue_file.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static int str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void same_env(const struct q_env *a, const struct q_env *b)
{
	if (strcmp(a->id, b->id) != 0 || a->created != b->created || a->size != b->size ||
	    !str_eq(a->sender, b->sender) || !str_eq(a->client, b->client) ||
	    !str_eq(a->helo, b->helo) || !str_eq(a->message_id, b->message_id) ||
	    !str_eq(a->envid, b->envid) || a->ret != b->ret || a->nrcpt != b->nrcpt)
		abort();
	for (size_t i = 0; i < a->nrcpt; i++)
		if (!str_eq(a->rcpt[i].addr, b->rcpt[i].addr) ||
		    a->rcpt[i].notify != b->rcpt[i].notify ||
		    !str_eq(a->rcpt[i].orcpt, b->rcpt[i].orcpt) ||
		    a->rcpt[i].state != b->rcpt[i].state ||
		    a->rcpt[i].attempts != b->rcpt[i].attempts ||
		    a->rcpt[i].next_attempt != b->rcpt[i].next_attempt ||
		    !str_eq(a->rcpt[i].last_reply, b->rcpt[i].last_reply))
			abort();
}

/* A parsed envelope, written again by the writer and read back. */
static void roundtrip(const struct q_env *env, const char *content)
{
	struct iovec iov = {(void *)content, (size_t)env->size};
	struct buf out = BUF_INIT;
	struct q_env again;
	size_t off;
	char why[QF_WHY_MAX];

	queue_file_format(&out, env, &iov, 1);
	memset(&again, 0, sizeof(again));
	if (queue_file_parse(out.data, out.len, &again, &off, why) < 0)
		abort();
	same_env(env, &again);
	if (memcmp(out.data + off, content, (size_t)env->size) != 0)
		abort();
	q_env_free(&again);
	buf_free(&out);
}

/* The state image applied to env; on success, its own format again. */
static void state(const char *st, size_t len, struct q_env *env)
{
	struct buf out = BUF_INIT;
	struct q_env copy = *env;
	char why[QF_WHY_MAX];

	if (queue_file_state_parse(st, len, env, why) < 0) {
		if (memcmp(&copy, env, sizeof(copy)) != 0)
			abort(); /* all or nothing */
		return;
	}
	queue_file_state_format(&out, env);
	if (queue_file_state_parse(out.data, out.len, env, why) < 0)
		abort();
	buf_free(&out);
}

static void envelope(const char *qf, size_t len)
{
	struct q_env env;
	size_t off;
	char why[QF_WHY_MAX];

	for (size_t part = 0; part < 2; part++) {
		memset(&env, 0, sizeof(env));
		if (queue_file_parse_envelope(qf, part ? len / 2 : len, len, &env, &off, why) == 0)
			q_env_free(&env);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *qf = (const char *)data;
	const char *st = memmem(data, size, QS_MAGIC, strlen(QS_MAGIC));
	size_t qlen = st ? (size_t)(st - qf) : size, slen = st ? size - qlen : 0;
	struct q_env env;
	size_t off;
	char why[QF_WHY_MAX];

	envelope(qf, qlen);
	memset(&env, 0, sizeof(env));
	if (queue_file_parse(qf, qlen, &env, &off, why) == 0) {
		if (off > qlen || env.size > qlen - off)
			abort();
		roundtrip(&env, qf + off);
	} else {
		memset(&env, 0, sizeof(env));
		q_env_add_rcpt(&env, "alice@example.org");
		q_env_add_rcpt(&env, "bob@example.org");
	}
	if (st)
		state(st, slen, &env);
	q_env_free(&env);
	return 0;
}
