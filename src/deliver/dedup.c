/* Inbound duplicate suppression by Message-ID and recipient, remembered in
 * DIR/dedup.state (not under DIR/state/, whose recovery removes files it
 * does not know). The file is read once, on first use, dropping expired
 * lines (rewritten atomically when more than half are), then appended to.
 * Invariant: only keys without blanks or controls are stored, so a line
 * always splits back into the same three fields. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver/dedup.h"
#include "mail/event.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

#define DEDUP_FIELD_MAX 998 /* a Message-ID longer than a header line is not one */

struct dedup_rec {
	time_t at;
	char *key; /* "message-id\trcpt", rcpt lower case */
};

struct dedup {
	char *path;
	int window;
	int loaded;
	struct dedup_rec *v;
	size_t n, cap;
};

struct dedup *dedup_open(const char *dir, int window)
{
	struct dedup *dd;

	if (window <= 0)
		return NULL;
	dd = xcalloc(1, sizeof(*dd));
	dd->path = xasprintf("%s/dedup.state", dir);
	dd->window = window;
	return dd;
}

void dedup_close(struct dedup *dd)
{
	if (dd == NULL)
		return;
	for (size_t i = 0; i < dd->n; i++)
		free(dd->v[i].key);
	free(dd->v);
	free(dd->path);
	free(dd);
}

/* A field that can be stored: printable, no blanks, not too long. */
static int dedup_field_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DEDUP_FIELD_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return 0;
	return 1;
}

/* "msgid\trcpt" with rcpt lower-cased, or NULL when either cannot be a key. */
static char *dedup_key(const char *msgid, const char *rcpt)
{
	char *key;

	if (msgid == NULL || !dedup_field_ok(msgid) || !dedup_field_ok(rcpt))
		return NULL;
	key = xasprintf("%s\t%s", msgid, rcpt);
	for (char *p = strchr(key, '\t') + 1; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return key;
}

static void dedup_add(struct dedup *dd, time_t at, char *key)
{
	if (dd->n == dd->cap) { /* full: drop what expired before growing */
		time_t oldest = clock_now() - dd->window;
		size_t k = 0;
		for (size_t i = 0; i < dd->n; i++) {
			if (dd->v[i].at >= oldest)
				dd->v[k++] = dd->v[i];
			else
				free(dd->v[i].key);
		}
		dd->n = k;
	}
	if (dd->n == dd->cap) {
		dd->cap = dd->cap ? dd->cap * 2 : 64;
		dd->v = xrealloc(dd->v, dd->cap * sizeof(*dd->v));
	}
	dd->v[dd->n].at = at;
	dd->v[dd->n++].key = key;
}

/* Writes the live records back (tmp + rename) once most lines expired. */
static void dedup_compact(struct dedup *dd)
{
	struct buf out = BUF_INIT;

	for (size_t i = 0; i < dd->n; i++)
		buf_printf(&out, "%lld\t%s\n", (long long)dd->v[i].at, dd->v[i].key);
	if (fs_write_atomic(dd->path, out.data ? out.data : "", out.len, 0600) < 0)
		log_warn("dedup: cannot rewrite %s", dd->path);
	buf_free(&out);
}

/* Reads the file once; lines older than the window are dropped. */
static void dedup_load(struct dedup *dd)
{
	struct buf text = BUF_INIT;
	time_t oldest = clock_now() - dd->window;
	size_t lines = 0;
	char *line, *save = NULL;

	dd->loaded = 1;
	if (fs_read_file(dd->path, &text) < 0) {
		if (errno != ENOENT)
			log_warn("dedup: cannot read %s", dd->path);
		buf_free(&text);
		return;
	}
	for (line = strtok_r(text.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *end, *tab;
		long long at = strtoll(line, &end, 10);
		lines++;
		if (*end != '\t' || (tab = strchr(end + 1, '\t')) == NULL || strchr(tab + 1, '\t'))
			continue; /* a torn last line after a crash */
		if (at >= oldest)
			dedup_add(dd, (time_t)at, xstrdup(end + 1));
	}
	buf_free(&text);
	if (lines > 2 * dd->n + 16)
		dedup_compact(dd);
}

int dedup_seen(struct dedup *dd, const char *msgid, const char *rcpt, time_t *when)
{
	char *key = dedup_key(msgid, rcpt);
	time_t oldest = clock_now() - (dd ? dd->window : 0);
	int found = 0;

	if (dd == NULL || key == NULL) {
		free(key);
		return 0;
	}
	if (!dd->loaded)
		dedup_load(dd);
	for (size_t i = dd->n; i-- > 0 && !found;)
		if (dd->v[i].at >= oldest && strcmp(dd->v[i].key, key) == 0) {
			found = 1;
			if (when)
				*when = dd->v[i].at;
		}
	free(key);
	return found;
}

int dedup_suppress(struct dedup *dd, const struct q_env *env, const char *rcpt, struct buf *reply)
{
	time_t at;
	char iso[64];

	if (!dedup_seen(dd, env->message_id, rcpt, &at))
		return 0;
	clock_iso8601((int64_t)at * 1000000, iso, sizeof(iso));
	{
		const char *kv[] = {"qid",	  env->id,	   "rcpt", rcpt,
				    "message_id", env->message_id, NULL};
		event_logkv(EV_DUPLICATE_SUPPRESSED, kv,
			    "Message %s to %s not delivered again: Message-ID %s was delivered to "
			    "it at %s (within dedup_window)",
			    env->id, rcpt, env->message_id, iso);
	}
	buf_printf(reply, "2.0.0 duplicate of a message delivered at %s; not delivered again", iso);
	return 1;
}

int dedup_record(struct dedup *dd, const struct q_env *env, const char *rcpt)
{
	char *key, *line;
	time_t now = clock_now();
	int fd, rc = 0;

	if (dd == NULL || (key = dedup_key(env->message_id, rcpt)) == NULL)
		return 0;
	if (!dd->loaded)
		dedup_load(dd);
	line = xasprintf("%lld\t%s\n", (long long)now, key);
	fd = open(dd->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fs_write_all(fd, line, strlen(line)) < 0) {
		log_warn("dedup: cannot append to %s", dd->path);
		rc = -1;
	}
	if (fd >= 0)
		close(fd);
	free(line);
	dedup_add(dd, now, key);
	return rc;
}
