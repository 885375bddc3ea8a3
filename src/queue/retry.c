/* Retry schedule, lifetimes and priority. Everything here is a function of
 * its arguments (the caller passes the time), so schedules are tested
 * without a clock. Invariant: a delay is at least 1 second and a next
 * attempt never lies after the message's expiry. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/duration.h"
#include "mail/config.h"
#include "queue/retry.h"
#include "mail/message.h"

static const char *const prio_names[] = {"non-urgent", "normal", "urgent"};

int retry_parse_intervals(struct retry_policy *p, const struct strlist *items, struct buf *problem)
{
	if (items->n == 0 || items->n > RETRY_MAX_INTERVALS) {
		buf_printf(problem, "%zu intervals; allowed 1 to %d", items->n,
			   RETRY_MAX_INTERVALS);
		return -1;
	}
	for (size_t i = 0; i < items->n; i++)
		if (config_check_retry_interval(items->v[i], problem) < 0)
			return -1;
	for (size_t i = 0; i < items->n; i++)
		p->interval[i] = (int)duration_parse(items->v[i], CONFIG_MAX_RETRY_DELAY);
	p->n_intervals = items->n;
	return 0;
}

void retry_policy_from_config(struct retry_policy *p, const struct config *cfg)
{
	struct buf problem = BUF_INIT;

	memset(p, 0, sizeof(*p));
	if (retry_parse_intervals(p, &cfg->retry_intervals, &problem) < 0) {
		p->interval[0] = 900; /* config_load refuses this; stay usable anyway */
		p->n_intervals = 1;
	}
	buf_free(&problem);
	p->lifetime[PRIORITY_URGENT] = cfg->lifetime_urgent;
	p->lifetime[PRIORITY_NORMAL] = cfg->lifetime_normal;
	p->lifetime[PRIORITY_NON_URGENT] = cfg->lifetime_non_urgent;
	p->delay_warning = cfg->delay_warning_time;
}

/* FNV-1a over a string, continuing from h. */
static uint64_t retry_fnv(uint64_t h, const char *s)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

uint64_t retry_seed(const char *qid, const char *rcpt)
{
	return retry_fnv(retry_fnv(0xcbf29ce484222325ULL, qid), rcpt);
}

/* splitmix64: a well-mixed number from seed and attempt. */
static uint64_t retry_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

time_t retry_delay(const struct retry_policy *p, int attempts, uint64_t seed)
{
	size_t i = attempts < 1 ? 0 : (size_t)attempts - 1;
	long long base, off;

	if (i >= p->n_intervals)
		i = p->n_intervals - 1;
	base = p->interval[i];
	/* off in [-PCT%, +PCT%] of base, in steps of a thousandth of that range */
	off = base * RETRY_JITTER_PCT *
	      ((long long)(retry_mix(seed + (uint64_t)attempts) % 2001) - 1000) / 100000;
	return base + off < 1 ? 1 : (time_t)(base + off);
}

time_t retry_expires_at(const struct retry_policy *p, time_t created, enum retry_priority prio)
{
	return created + p->lifetime[prio];
}

time_t retry_next_attempt(const struct retry_policy *p, time_t created, enum retry_priority prio,
			  time_t now, int attempts, uint64_t seed)
{
	time_t next = now + retry_delay(p, attempts, seed);
	time_t expires = retry_expires_at(p, created, prio);

	return next > expires && expires > now ? expires : next;
}

int retry_expired(const struct retry_policy *p, time_t created, enum retry_priority prio,
		  time_t now)
{
	return now >= retry_expires_at(p, created, prio);
}

int retry_warning_due(const struct retry_policy *p, time_t created, enum retry_priority prio,
		      time_t now, int warned)
{
	return p->delay_warning > 0 && !warned && now >= created + p->delay_warning &&
	       !retry_expired(p, created, prio, now);
}

/* X-Priority: "1 (Highest)" and the like: the leading digit counts. */
static int retry_x_priority(const char *v)
{
	if (*v < '1' || *v > '5' || isdigit((unsigned char)v[1]))
		return -1;
	return *v <= '2' ? PRIORITY_URGENT : *v == '3' ? PRIORITY_NORMAL : PRIORITY_NON_URGENT;
}

int retry_priority_parse(const char *header, const char *value)
{
	static const char *const importance[] = {"low", "normal", "high"};
	const char *const *names = NULL;

	value += strspn(value, " \t");
	if (strcasecmp(header, "X-Priority") == 0)
		return retry_x_priority(value);
	if (strcasecmp(header, "Priority") == 0)
		names = prio_names;
	else if (strcasecmp(header, "Importance") == 0)
		names = importance;
	for (int i = 0; names && i < 3; i++) {
		size_t n = strlen(names[i]);
		if (strncasecmp(value, names[i], n) == 0 &&
		    (value[n] == '\0' || value[n] == ' ' || value[n] == '\t' || value[n] == ';' ||
		     value[n] == '('))
			return i;
	}
	return -1;
}

enum retry_priority retry_priority_of(const char *msg, size_t len)
{
	static const char *const headers[] = {"Priority", "Importance", "X-Priority"};

	for (size_t i = 0; i < 3; i++) {
		char *v = msg_header_value(msg, len, headers[i]);
		int prio = v ? retry_priority_parse(headers[i], v) : -1;
		free(v);
		if (prio >= 0)
			return (enum retry_priority)prio;
	}
	return PRIORITY_NORMAL;
}

const char *retry_priority_name(enum retry_priority p)
{
	return prio_names[p];
}
