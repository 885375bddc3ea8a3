/* The session ledger (see ledger.h): the record of every dial-up session,
 * missed ones included, as one JSON line each. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dialup/ledger.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

json_t *ledger_json_time(time_t t)
{
	char iso[64];

	if (t == 0)
		return json_null();
	clock_iso8601((int64_t)t * 1000000, iso, sizeof(iso));
	return json_string(iso);
}

static json_t *ledger_string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* The record as a JSON object, in the ledger's field order. */
static json_t *ledger_json(const struct ledger_record *r, int64_t now)
{
	json_t *o = json_object();
	char start[64];
	int64_t up = r->connect_usec ? r->connect_usec : now;

	clock_iso8601(r->start_usec, start, sizeof(start));
	json_object_set_new(o, "start", json_string(start));
	json_object_set_new(o, "slot", ledger_json_time(r->slot));
	json_object_set_new(o, "reason", json_string(r->reason));
	json_object_set_new(o, "result", json_string(r->ok ? "ok" : "missed"));
	json_object_set_new(o, "attempts", json_incref(r->attempts));
	json_object_set_new(o, "rounds", json_integer(r->rounds));
	json_object_set_new(o, "entry", ledger_string_or_null(r->entry));
	json_object_set_new(o, "dial_seconds", json_real((double)(up - r->start_usec) / 1e6));
	json_object_set_new(o, "connect_seconds",
			    json_real(r->connect_usec ? (double)(now - r->connect_usec) / 1e6 : 0));
	json_object_set_new(o, "bytes_out", json_integer((json_int_t)r->bytes_out));
	json_object_set_new(o, "bytes_in", json_integer((json_int_t)r->bytes_in));
	json_object_set_new(o, "messages_out", json_integer(r->msgs_out));
	json_object_set_new(o, "messages_in", json_integer(r->msgs_in));
	json_object_set_new(o, "hangup_reason", ledger_string_or_null(r->hangup_reason));
	json_object_set_new(o, "next_slot", ledger_json_time(r->next_slot));
	return o;
}

void ledger_append(const char *dir, const struct ledger_record *r)
{
	char *path = xasprintf("%s/log/sessions.jsonl", dir);
	json_t *o = ledger_json(r, clock_usec());
	char *dump = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *line = xasprintf("%s\n", dump ? dump : "{}");
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		log_warn("session: cannot write %s", path);
	if (fd >= 0)
		close(fd);
	json_decref(o);
	free(dump);
	free(line);
	free(path);
}

time_t ledger_time(const json_t *v)
{
	struct tm tm;
	const char *s = json_string_value(v);

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
				&tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

int ledger_read(const char *dir, long long *offset, void (*cb)(json_t *rec, void *arg), void *arg)
{
	char *path = xasprintf("%s/log/sessions.jsonl", dir);
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	free(path);
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	if (fseeko(f, 0, SEEK_END) == 0 && ftello(f) < *offset)
		*offset = 0;
	fseeko(f, *offset, SEEK_SET);
	while ((n = getline(&line, &cap, f)) > 0 && line[n - 1] == '\n') {
		json_t *rec = json_loadb(line, (size_t)n, 0, NULL);
		*offset += n;
		if (json_is_object(rec))
			cb(rec, arg);
		json_decref(rec);
	}
	free(line);
	fclose(f);
	return 0;
}

/* The start time of the first whole line after offset off (0 at the end
 * or on a line that does not parse); *line gets that line's offset. */
static time_t ledger_start_after(FILE *f, long long off, long long *line)
{
	char buf[512];
	time_t t = 0;
	int c = '\n';

	if (fseeko(f, off, SEEK_SET) < 0)
		return 0;
	if (off > 0) /* skip the rest of the line we landed in */
		while ((c = getc(f)) != EOF && c != '\n')
			;
	*line = ftello(f);
	if (c != EOF && fgets(buf, sizeof(buf), f) != NULL) {
		const char *p = strstr(buf, "\"start\":\"");
		json_t *v = p ? json_stringn(p + 9, 24) : NULL;
		t = ledger_time(v);
		json_decref(v);
	}
	return t;
}

long long ledger_offset_before(const char *dir, time_t t)
{
	char *path = xasprintf("%s/log/sessions.jsonl", dir);
	FILE *f = fopen(path, "re");
	long long lo = 0, hi, line;

	free(path);
	if (f == NULL || fseeko(f, 0, SEEK_END) < 0) {
		if (f)
			fclose(f);
		return 0;
	}
	hi = ftello(f);
	while (hi - lo > 65536) {
		long long mid = lo + (hi - lo) / 2;
		time_t start = ledger_start_after(f, mid, &line);
		if (start != 0 && start < t)
			lo = line;
		else
			hi = mid;
	}
	fclose(f);
	return lo;
}
