/* Per-client counters (see anvil.h): a linear table, small enough (a few
 * hundred entries above max_connections) that a scan per connection costs
 * less than the accept. Invariant: entries are never moved, so a session may
 * keep its entry's address while it has the connection open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xmalloc.h"
#include "smtp/anvil.h"

struct anvil_client {
	char key[48]; /* INET6_ADDRSTRLEN; "" = free */
	int conns;    /* open now */
	time_t conn_t0, msg_t0, warned;
	int conn_n, msg_n, suppressed;
	time_t last; /* last use: expiry */
};

struct anvil {
	struct anvil_client *v;
	size_t cap;
};

struct anvil *anvil_new(size_t cap)
{
	struct anvil *a = xcalloc(1, sizeof(*a));

	a->cap = cap ? cap : 1;
	a->v = xcalloc(a->cap, sizeof(*a->v));
	return a;
}

void anvil_free(struct anvil *a)
{
	if (a == NULL)
		return;
	free(a->v);
	free(a);
}

/* An entry nothing depends on any more: no connection, quiet for a window. */
static int anvil_expired(const struct anvil_client *c, time_t now)
{
	return c->key[0] == '\0' || (c->conns == 0 && now - c->last >= ANVIL_WINDOW);
}

/* The entry for key; else a free or expired one; else the least recently
 * used entry without connections (its counts are lost: bounded memory wins). */
static struct anvil_client *anvil_slot(struct anvil *a, const char *key, time_t now)
{
	struct anvil_client *spare = NULL, *oldest = NULL;

	for (size_t i = 0; i < a->cap; i++) {
		struct anvil_client *c = &a->v[i];

		if (c->key[0] && strcmp(c->key, key) == 0)
			return c;
		if (spare == NULL && anvil_expired(c, now))
			spare = c;
		if (c->conns == 0 && (oldest == NULL || c->last < oldest->last))
			oldest = c;
	}
	if (spare == NULL)
		spare = oldest ? oldest : &a->v[0]; /* cap too small: our bug, but stay bounded */
	memset(spare, 0, sizeof(*spare));
	snprintf(spare->key, sizeof(spare->key), "%s", key);
	return spare;
}

/* Counts one event in a per-minute window starting at *t0. */
static int anvil_count(time_t *t0, int *n, time_t now)
{
	if (*n == 0 || now - *t0 >= ANVIL_WINDOW || now < *t0) {
		*t0 = now;
		*n = 0;
	}
	return ++*n;
}

struct anvil_client *anvil_connect(struct anvil *a, const char *key, time_t now, int *conns,
				   int *rate)
{
	struct anvil_client *c = anvil_slot(a, key, now);

	c->last = now;
	*conns = ++c->conns;
	*rate = anvil_count(&c->conn_t0, &c->conn_n, now);
	return c;
}

void anvil_disconnect(struct anvil_client *c, time_t now)
{
	if (c->conns > 0)
		c->conns--;
	c->last = now;
}

int anvil_message(struct anvil_client *c, time_t now)
{
	c->last = now;
	return anvil_count(&c->msg_t0, &c->msg_n, now);
}

int anvil_warn(struct anvil_client *c, time_t now, int *suppressed)
{
	if (c->warned != 0 && now - c->warned < ANVIL_WINDOW && now >= c->warned) {
		c->suppressed++;
		return 0;
	}
	*suppressed = c->suppressed;
	c->suppressed = 0;
	c->warned = now;
	return 1;
}

size_t anvil_size(const struct anvil *a, time_t now)
{
	size_t n = 0;

	for (size_t i = 0; i < a->cap; i++)
		n += !anvil_expired(&a->v[i], now);
	return n;
}
