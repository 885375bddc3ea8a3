/* The queue in memory (see qindex.h). Messages live in a slot array found
 * through an open-addressing hash on the id; each (message, pending
 * domain) pair is a node on that domain's doubly linked list and on the
 * message's own chain, so a domain's messages are found without looking
 * at any other. Domains and links are interned and never removed (a
 * hub's few thousand domains). Invariant: the counters of a domain and of
 * a link are changed only by qindex_link_msg and qindex_unlink_msg. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/xmalloc.h"
#include "mail/config.h"
#include "mail/policy.h"
#include "mail/routes.h"
#include "queue/qindex.h"
#include "queue/retry.h"

#define QIX_NONE     UINT32_MAX
#define QIX_ID_LEN   22
#define QIX_HEAD_MAX 16384 /* header bytes looked at for the priority */

struct qix_msg {
	char id[QIX_ID_LEN + 1]; /* "" = free slot */
	uint8_t prio;
	uint8_t held;	  /* has a pending recipient in a held domain */
	uint8_t deferred; /* has a pending recipient tried before */
	uint32_t size;
	uint32_t pending; /* pending recipients */
	uint32_t nodes;	  /* first node of its chain, or the next free slot */
	int64_t created;
	char *info;    /* what the listing shows (qix_info_new), or NULL */
	int64_t due;   /* when the queue run looks at it next (the heap's key) */
	uint32_t hpos; /* its place in the heap, or QIX_NONE */
};

struct qix_node {
	uint32_t msg, dom;
	uint32_t prev, next; /* on the domain's list */
	uint32_t mnext;	     /* on the message's chain, or the next free node */
};

struct qix_dom {
	char *name; /* lower case */
	uint32_t head;
	uint32_t msgs;
	int32_t link; /* index into links, or -1 */
	uint8_t held;
};

struct qindex {
	const struct config *cfg;
	struct qix_msg *msg;
	uint32_t nmsg, capmsg, freemsg;
	uint32_t *byid; /* hash: slot + 1, 0 = empty */
	uint32_t capid, used;
	struct qix_node *node;
	uint32_t nnode, capnode, freenode;
	struct qix_dom *dom;
	uint32_t ndom, capdom;
	uint32_t *byname; /* hash of domains: index + 1 */
	uint32_t capname;
	struct strlist links;
	unsigned *link_msgs, *link_urgent;
	struct qindex_totals tot;
	size_t info_bytes; /* heap bytes of the msg[].info strings */
	uint32_t *heap;	   /* slots, a binary min-heap on (due, id) */
	uint32_t nheap, capheap;
};

static uint32_t qix_dom_find(const struct qindex *ix, const char *name);
static void qix_info_set(struct qindex *ix, uint32_t s, const struct q_env *env);
static void qix_heap_set(struct qindex *ix, uint32_t s, int64_t due);
static void qix_heap_del(struct qindex *ix, uint32_t s);
static int64_t qix_env_due(const struct q_env *env);

static uint32_t qix_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

struct qindex *qindex_new(void)
{
	struct qindex *ix = xcalloc(1, sizeof(*ix));

	ix->freemsg = QIX_NONE;
	ix->freenode = QIX_NONE;
	return ix;
}

void qindex_free(struct qindex *ix)
{
	if (ix == NULL)
		return;
	for (uint32_t i = 0; i < ix->ndom; i++)
		free(ix->dom[i].name);
	free(ix->dom);
	free(ix->byname);
	for (uint32_t s = 0; s < ix->nmsg; s++)
		free(ix->msg[s].id[0] ? ix->msg[s].info : NULL);
	free(ix->msg);
	free(ix->byid);
	free(ix->node);
	strlist_free(&ix->links);
	free(ix->link_msgs);
	free(ix->link_urgent);
	free(ix->heap);
	free(ix);
}

void qindex_set_config(struct qindex *ix, const struct config *cfg)
{
	ix->cfg = cfg;
}

/* ------------------------------------------------------------ id hash */

/* The bucket of id: where it is, or the empty one where it would go. */
static uint32_t qix_id_bucket(const struct qindex *ix, const char *id)
{
	uint32_t mask = ix->capid - 1, b = qix_hash(id) & mask;

	while (ix->byid[b] != 0 && strcmp(ix->msg[ix->byid[b] - 1].id, id) != 0)
		b = (b + 1) & mask;
	return b;
}

static void qix_id_grow(struct qindex *ix)
{
	uint32_t old = ix->capid, *v = ix->byid;

	ix->capid = old ? 2 * old : 1024;
	ix->byid = xcalloc(ix->capid, sizeof(*ix->byid));
	for (uint32_t i = 0; i < old; i++)
		if (v[i] != 0)
			ix->byid[qix_id_bucket(ix, ix->msg[v[i] - 1].id)] = v[i];
	free(v);
}

/* The slot of id, or QIX_NONE. */
static uint32_t qix_find(const struct qindex *ix, const char *id)
{
	if (ix->capid == 0)
		return QIX_NONE;
	uint32_t b = qix_id_bucket(ix, id);
	return ix->byid[b] ? ix->byid[b] - 1 : QIX_NONE;
}

/* Linear probing: deleting moves later entries of the run back. */
static void qix_id_delete(struct qindex *ix, uint32_t b)
{
	uint32_t mask = ix->capid - 1, j = b;

	ix->byid[b] = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (ix->byid[j] == 0)
			break;
		uint32_t home = qix_hash(ix->msg[ix->byid[j] - 1].id) & mask;
		/* Move j to b unless its home lies cyclically in (b, j]. */
		if ((b < j && (home <= b || home > j)) || (b > j && home <= b && home > j)) {
			ix->byid[b] = ix->byid[j];
			ix->byid[j] = 0;
			b = j;
		}
	}
	ix->used--;
}

/* -------------------------------------------------------------- domains */

static uint32_t qix_name_bucket(const struct qindex *ix, const char *name)
{
	uint32_t mask = ix->capname - 1, b = qix_hash(name) & mask;

	while (ix->byname[b] != 0 && strcmp(ix->dom[ix->byname[b] - 1].name, name) != 0)
		b = (b + 1) & mask;
	return b;
}

static void qix_name_grow(struct qindex *ix)
{
	ix->capname = ix->capname ? 2 * ix->capname : 256;
	free(ix->byname);
	ix->byname = xcalloc(ix->capname, sizeof(*ix->byname));
	for (uint32_t i = 0; i < ix->ndom; i++)
		ix->byname[qix_name_bucket(ix, ix->dom[i].name)] = i + 1;
}

static int32_t qix_link_id(struct qindex *ix, const char *name)
{
	for (size_t i = 0; i < ix->links.n; i++)
		if (strcmp(ix->links.v[i], name) == 0)
			return (int32_t)i;
	strlist_add(&ix->links, name);
	ix->link_msgs = xrealloc(ix->link_msgs, ix->links.n * sizeof(unsigned));
	ix->link_urgent = xrealloc(ix->link_urgent, ix->links.n * sizeof(unsigned));
	ix->link_msgs[ix->links.n - 1] = 0;
	ix->link_urgent[ix->links.n - 1] = 0;
	return (int32_t)(ix->links.n - 1);
}

/* What the configuration says about a new domain: held, and its link. */
static void qix_dom_classify(struct qindex *ix, struct qix_dom *d)
{
	const struct route *r;

	d->link = -1;
	d->held = 0;
	if (ix->cfg == NULL || config_is_local_domain(ix->cfg, d->name))
		return;
	d->held = (uint8_t)(policy_held(ix->cfg, d->name) != 0);
	r = ix->cfg->routes ? routes_lookup(ix->cfg->routes, d->name) : NULL;
	if (r && r->via)
		d->link = qix_link_id(ix, r->via);
}

/* The domain of an address, interned (lower case). */
static uint32_t qix_dom_of(struct qindex *ix, const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *name = xstrdup(at ? at + 1 : "");
	uint32_t b;

	for (char *c = name; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if (2 * (ix->ndom + 1) > ix->capname)
		qix_name_grow(ix);
	b = qix_name_bucket(ix, name);
	if (ix->byname[b] != 0) {
		free(name);
		return ix->byname[b] - 1;
	}
	if (ix->ndom == ix->capdom) {
		ix->capdom = ix->capdom ? 2 * ix->capdom : 64;
		ix->dom = xrealloc(ix->dom, ix->capdom * sizeof(*ix->dom));
	}
	struct qix_dom *d = &ix->dom[ix->ndom];
	memset(d, 0, sizeof(*d));
	d->name = name;
	d->head = QIX_NONE;
	qix_dom_classify(ix, d);
	ix->byname[b] = ++ix->ndom;
	return ix->ndom - 1;
}

/* ---------------------------------------------------------------- nodes */

static uint32_t qix_node_new(struct qindex *ix)
{
	uint32_t n = ix->freenode;

	if (n != QIX_NONE) {
		ix->freenode = ix->node[n].mnext;
		return n;
	}
	if (ix->nnode == ix->capnode) {
		ix->capnode = ix->capnode ? 2 * ix->capnode : 1024;
		ix->node = xrealloc(ix->node, ix->capnode * sizeof(*ix->node));
	}
	return ix->nnode++;
}

/* 1 if message m has a node for domain dom already. */
static int qix_msg_has_dom(const struct qindex *ix, const struct qix_msg *m, uint32_t dom)
{
	for (uint32_t n = m->nodes; n != QIX_NONE; n = ix->node[n].mnext)
		if (ix->node[n].dom == dom)
			return 1;
	return 0;
}

/* 1 if some domain of m before node stop goes via link. */
static int qix_link_seen(const struct qindex *ix, const struct qix_msg *m, uint32_t stop,
			 int32_t link)
{
	for (uint32_t n = m->nodes; n != stop; n = ix->node[n].mnext)
		if (ix->dom[ix->node[n].dom].link == link)
			return 1;
	return 0;
}

/* Adds slot s's counts to its domains and links (once per link). */
static void qix_count(struct qindex *ix, uint32_t s, int sign)
{
	struct qix_msg *m = &ix->msg[s];

	for (uint32_t n = m->nodes; n != QIX_NONE; n = ix->node[n].mnext) {
		struct qix_dom *d = &ix->dom[ix->node[n].dom];
		d->msgs += (uint32_t)sign;
		if (d->link >= 0 && !qix_link_seen(ix, m, n, d->link)) {
			ix->link_msgs[d->link] += (unsigned)sign;
			if (m->prio == PRIORITY_URGENT)
				ix->link_urgent[d->link] += (unsigned)sign;
		}
	}
	ix->tot.messages += (unsigned)sign;
	ix->tot.urgent += m->prio == PRIORITY_URGENT ? (unsigned)sign : 0;
	ix->tot.held += m->held ? (unsigned)sign : 0;
	ix->tot.pending += m->pending * (unsigned)sign;
	ix->tot.bytes += sign > 0 ? m->size : -(uint64_t)m->size;
}

/* Puts slot s on the lists of its pending recipients' domains. */
static void qix_link_msg(struct qindex *ix, uint32_t s, const struct q_env *env)
{
	ix->msg[s].nodes = QIX_NONE;
	ix->msg[s].pending = 0;
	ix->msg[s].held = 0;
	ix->msg[s].deferred = 0;
	for (size_t i = 0; i < env->nrcpt; i++) {
		uint32_t dom, n;
		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		ix->msg[s].pending++;
		ix->msg[s].deferred |= env->rcpt[i].attempts > 0;
		dom = qix_dom_of(ix, env->rcpt[i].addr);
		if (qix_msg_has_dom(ix, &ix->msg[s], dom))
			continue;
		n = qix_node_new(ix);
		ix->node[n] =
		    (struct qix_node){s, dom, QIX_NONE, ix->dom[dom].head, ix->msg[s].nodes};
		if (ix->dom[dom].head != QIX_NONE)
			ix->node[ix->dom[dom].head].prev = n;
		ix->dom[dom].head = n;
		ix->msg[s].nodes = n;
		ix->msg[s].held |= ix->dom[dom].held;
	}
	qix_count(ix, s, 1);
}

/* Takes slot s off its domains' lists and its counts off the counters. */
static void qix_unlink_msg(struct qindex *ix, uint32_t s)
{
	uint32_t n, next;

	qix_count(ix, s, -1);
	for (n = ix->msg[s].nodes; n != QIX_NONE; n = next) {
		struct qix_node *x = &ix->node[n];
		next = x->mnext;
		if (x->prev != QIX_NONE)
			ix->node[x->prev].next = x->next;
		else
			ix->dom[x->dom].head = x->next;
		if (x->next != QIX_NONE)
			ix->node[x->next].prev = x->prev;
		x->mnext = ix->freenode;
		ix->freenode = n;
	}
	ix->msg[s].nodes = QIX_NONE;
}

/* ------------------------------------------------------------- messages */

static uint32_t qix_slot_new(struct qindex *ix)
{
	uint32_t s = ix->freemsg;

	if (s != QIX_NONE) {
		ix->freemsg = ix->msg[s].nodes;
		return s;
	}
	if (ix->nmsg == ix->capmsg) {
		ix->capmsg = ix->capmsg ? 2 * ix->capmsg : 1024;
		ix->msg = xrealloc(ix->msg, ix->capmsg * sizeof(*ix->msg));
	}
	return ix->nmsg++;
}

void qindex_put(struct qindex *ix, const struct q_env *env, int prio)
{
	uint32_t s, b;

	if (!queue_id_valid(env->id))
		return;
	if ((s = qix_find(ix, env->id)) != QIX_NONE) {
		qix_unlink_msg(ix, s);
	} else {
		if (2 * (ix->used + 1) > ix->capid)
			qix_id_grow(ix);
		s = qix_slot_new(ix);
		memcpy(ix->msg[s].id, env->id, QIX_ID_LEN + 1);
		ix->msg[s].hpos = QIX_NONE;
		b = qix_id_bucket(ix, env->id);
		ix->byid[b] = s + 1;
		ix->used++;
		ix->msg[s].info = NULL;
	}
	qix_info_set(ix, s, env);
	ix->msg[s].prio = (uint8_t)prio;
	ix->msg[s].size = env->size > UINT32_MAX ? UINT32_MAX : (uint32_t)env->size;
	ix->msg[s].created = env->created;
	qix_link_msg(ix, s, env);
	qix_heap_set(ix, s, qix_env_due(env));
}

void qindex_update(struct qindex *ix, const struct q_env *env)
{
	uint32_t s = queue_id_valid(env->id) ? qix_find(ix, env->id) : QIX_NONE;

	if (s == QIX_NONE)
		return;
	qix_unlink_msg(ix, s);
	qix_link_msg(ix, s, env);
	qix_info_set(ix, s, env);
	qix_heap_set(ix, s, qix_env_due(env));
}

void qindex_each(const struct qindex *ix, void (*fn)(const struct qindex_entry *e, void *arg),
		 void *arg)
{
	for (uint32_t s = 0; s < ix->nmsg; s++) {
		const struct qix_msg *m = &ix->msg[s];
		struct qindex_entry e;

		if (m->id[0] == '\0')
			continue; /* a free slot */
		e.id = m->id;
		e.created = (time_t)m->created;
		e.held = m->held;
		e.tried = m->deferred;
		e.domain = m->nodes != QIX_NONE ? ix->dom[ix->node[m->nodes].dom].name : NULL;
		fn(&e, arg);
	}
}

void qindex_remove(struct qindex *ix, const char *id)
{
	uint32_t s, b;

	if (ix->capid == 0 || !queue_id_valid(id))
		return;
	b = qix_id_bucket(ix, id);
	if (ix->byid[b] == 0)
		return;
	s = ix->byid[b] - 1;
	qix_unlink_msg(ix, s);
	qix_info_set(ix, s, NULL);
	qix_heap_del(ix, s);
	qix_id_delete(ix, b);
	ix->msg[s].id[0] = '\0';
	ix->msg[s].nodes = ix->freemsg;
	ix->freemsg = s;
}

int qindex_has(const struct qindex *ix, const char *id)
{
	return queue_id_valid(id) && qix_find(ix, id) != QIX_NONE;
}

void qindex_totals(const struct qindex *ix, struct qindex_totals *t)
{
	*t = ix->tot;
}

void qindex_links_count(const struct qindex *ix, const struct strlist *names, unsigned *msgs,
			unsigned *urgent)
{
	*msgs = 0;
	*urgent = 0;
	for (size_t i = 0; i < ix->links.n; i++)
		if (strlist_has(names, ix->links.v[i])) {
			*msgs += ix->link_msgs[i];
			*urgent += ix->link_urgent[i];
		}
}

/* Calls cb for the messages of held domain d not yet reported (a message
 * with two matching domains is reported at the first). */
static int qix_held_dom(const struct qindex *ix, uint32_t d, const char *node, int sub,
			int (*cb)(const char *, void *), void *arg, unsigned *calls)
{
	for (uint32_t n = ix->dom[d].head; n != QIX_NONE; n = ix->node[n].next) {
		const struct qix_msg *m = &ix->msg[ix->node[n].msg];
		int dup = 0;
		for (uint32_t o = m->nodes; o != n && !dup; o = ix->node[o].mnext) {
			const struct qix_dom *od = &ix->dom[ix->node[o].dom];
			dup = od->held && policy_domain_under(od->name, node, sub);
		}
		if (dup)
			continue;
		(*calls)++;
		if (cb && cb(m->id, arg) != 0)
			return 1;
	}
	return 0;
}

unsigned qindex_held_for(const struct qindex *ix, const char *node, int sub,
			 int (*cb)(const char *id, void *arg), void *arg)
{
	unsigned calls = 0;

	if (!sub) {
		uint32_t d = qix_dom_find(ix, node);
		if (d != QIX_NONE && ix->dom[d].held)
			qix_held_dom(ix, d, node, 0, cb, arg, &calls);
		return calls;
	}
	for (uint32_t d = 0; d < ix->ndom; d++)
		if (ix->dom[d].held && ix->dom[d].head != QIX_NONE &&
		    policy_domain_under(ix->dom[d].name, node, 1) &&
		    qix_held_dom(ix, d, node, 1, cb, arg, &calls))
			break;
	return calls;
}

/* The interned domain of name (any case), or QIX_NONE if never seen. */
static uint32_t qix_dom_find(const struct qindex *ix, const char *name)
{
	char *lower = xstrdup(name);
	uint32_t b, d = QIX_NONE;

	for (char *c = lower; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if (ix->capname) {
		b = qix_name_bucket(ix, lower);
		if (ix->byname[b])
			d = ix->byname[b] - 1;
	}
	free(lower);
	return d;
}

int qindex_state_parse(const char *s)
{
	static const char *const names[] = {"any", "held", "deferred", "new"};

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* 1 if slot s (in use) matches f; dom and link are f's, interned. */
static int qix_match(const struct qindex *ix, uint32_t s, const struct qindex_filter *f,
		     uint32_t dom, int32_t link)
{
	const struct qix_msg *m = &ix->msg[s];
	int found = f->domain == NULL && f->link == NULL;

	if ((f->state == QINDEX_HELD && !m->held) ||
	    (f->state == QINDEX_DEFERRED && !m->deferred) ||
	    (f->state == QINDEX_NEW && m->deferred) ||
	    (f->older_than && m->created >= (int64_t)f->older_than))
		return 0;
	for (uint32_t n = m->nodes; n != QIX_NONE && !found; n = ix->node[n].mnext)
		found = (f->domain == NULL || ix->node[n].dom == dom) &&
			(f->link == NULL || ix->dom[ix->node[n].dom].link == link);
	return found;
}

/* f's domain and link, interned; 0 if f can match nothing. */
static int qix_filter_prepare(const struct qindex *ix, const struct qindex_filter *f, uint32_t *dom,
			      int32_t *link)
{
	*dom = f->domain ? qix_dom_find(ix, f->domain) : QIX_NONE;
	*link = -1;
	for (size_t i = 0; f->link && i < ix->links.n; i++)
		if (strcmp(ix->links.v[i], f->link) == 0)
			*link = (int32_t)i;
	return !(f->link && *link < 0) && !(f->domain && *dom == QIX_NONE);
}

int qindex_matches(const struct qindex *ix, const char *id, const struct qindex_filter *f)
{
	uint32_t s = queue_id_valid(id) ? qix_find(ix, id) : QIX_NONE, dom;
	int32_t link;

	return s != QIX_NONE && qix_filter_prepare(ix, f, &dom, &link) &&
	       qix_match(ix, s, f, dom, link);
}

unsigned qindex_count(const struct qindex *ix, const struct qindex_filter *f)
{
	uint32_t dom;
	int32_t link;
	unsigned n = 0;

	if (!qix_filter_prepare(ix, f, &dom, &link))
		return 0;
	if (f->domain && !f->link && !f->state && !f->older_than)
		return ix->dom[dom].msgs;
	for (uint32_t s = 0; s < ix->nmsg; s++)
		n += ix->msg[s].id[0] && qix_match(ix, s, f, dom, link);
	return n;
}

size_t qindex_memory(const struct qindex *ix)
{
	size_t n = sizeof(*ix) + (size_t)ix->capmsg * sizeof(*ix->msg) +
		   (size_t)ix->capid * sizeof(*ix->byid) + (size_t)ix->capnode * sizeof(*ix->node) +
		   (size_t)ix->capdom * sizeof(*ix->dom) +
		   (size_t)ix->capname * sizeof(*ix->byname) +
		   (size_t)ix->capheap * sizeof(*ix->heap);

	for (uint32_t i = 0; i < ix->ndom; i++)
		n += strlen(ix->dom[i].name) + 1;
	return n + ix->links.n * 2 * sizeof(unsigned) + ix->info_bytes;
}

int qindex_priority_iov(const struct iovec *iov, int iovcnt)
{
	char head[QIX_HEAD_MAX];
	size_t len = 0;

	for (int i = 0; i < iovcnt && len < sizeof(head); i++) {
		size_t k =
		    iov[i].iov_len < sizeof(head) - len ? iov[i].iov_len : sizeof(head) - len;
		if (k == 0)
			continue; /* an empty piece may have no buffer at all */
		memcpy(head + len, iov[i].iov_base, k);
		len += k;
	}
	return (int)retry_priority_of(head, len);
}

/* ------------------------------------------------------------- listing */

#define QIX_NULL "%-" /* a field that is NULL (escaping never makes it) */

/* s into out with '%', control bytes and DEL as %XX (tabs and newlines
 * separate fields and lines); NULL as QIX_NULL. */
static void qix_put_field(struct buf *out, const char *s)
{
	if (s == NULL) {
		buf_puts(out, QIX_NULL);
		return;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '%' || c < 0x20 || c == 0x7f)
			buf_printf(out, "%%%02X", c);
		else
			buf_putc(out, (char)c);
	}
}

/* The listing's fields of env after id, arrival and size: sender, client,
 * helo, message-id, then per recipient address, state, attempts, next
 * attempt and last reply; tab-separated, escaped. */
static char *qix_info_new(const struct q_env *env)
{
	static const char states[] = {
	    [RCPT_PENDING] = 'p', [RCPT_DELIVERED] = 'd', [RCPT_FAILED] = 'f'};
	struct buf b = BUF_INIT;

	qix_put_field(&b, env->sender ? env->sender : "");
	buf_putc(&b, '\t');
	qix_put_field(&b, env->client);
	buf_putc(&b, '\t');
	qix_put_field(&b, env->helo);
	buf_putc(&b, '\t');
	qix_put_field(&b, env->message_id);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct q_rcpt *r = &env->rcpt[i];
		buf_putc(&b, '\t');
		qix_put_field(&b, r->addr);
		buf_printf(&b, "\t%c\t%d\t%lld\t", states[r->state], r->attempts,
			   (long long)r->next_attempt);
		qix_put_field(&b, r->last_reply);
	}
	return buf_steal(&b);
}

/* Slot s's listing fields become env's (NULL: none). */
static void qix_info_set(struct qindex *ix, uint32_t s, const struct q_env *env)
{
	char *old = ix->msg[s].info, *info = env ? qix_info_new(env) : NULL;

	if (old)
		ix->info_bytes -= malloc_usable_size(old) + sizeof(size_t);
	free(old);
	if (info) {
		/* A tight copy: buf_steal hands over its spare capacity too. */
		char *tight = xstrdup(info);
		free(info);
		info = tight;
		ix->info_bytes += malloc_usable_size(info) + sizeof(size_t);
	}
	ix->msg[s].info = info;
}

int qindex_list(const struct qindex *ix, uint32_t *pos, const struct qindex_filter *f,
		unsigned slots, struct buf *out)
{
	uint32_t dom, end;
	int32_t link;

	if (!qix_filter_prepare(ix, f, &dom, &link))
		return 0;
	end = ix->nmsg - *pos > slots ? *pos + slots : ix->nmsg;
	for (uint32_t s = *pos; s < end; s++) {
		const struct qix_msg *m = &ix->msg[s];
		if (m->id[0] == '\0' || m->info == NULL || !qix_match(ix, s, f, dom, link))
			continue;
		buf_printf(out, "m\t%s\t%lld\t%u\t%s\n", m->id, (long long)m->created, m->size,
			   m->info);
	}
	*pos = end;
	return end < ix->nmsg;
}

/* The next tab-separated field of *p, unescaped in place into *out
 * (QIX_NULL: NULL); -1 if there is none. */
static int qix_get_field(char **p, char **out)
{
	char *f = *p, *tab, *w;

	if (f == NULL)
		return -1;
	tab = strchr(f, '\t');
	*p = tab ? tab + 1 : NULL;
	if (tab)
		*tab = '\0';
	*out = strcmp(f, QIX_NULL) == 0 ? NULL : f;
	for (w = f; *out && *f; f++) {
		char hex[3] = {f[0] == '%' ? f[1] : 0, hex[0] ? f[2] : 0, 0};
		if (hex[0] && hex[1] && strspn(hex, "0123456789ABCDEFabcdef") == 2) {
			*w++ = (char)strtoul(hex, NULL, 16);
			f += 2;
		} else
			*w++ = *f;
	}
	if (*out)
		*w = '\0';
	return 0;
}

/* The next field of *p as a number. */
static int qix_get_num(char **p, long long *v)
{
	char *f, *end;

	if (qix_get_field(p, &f) < 0 || f == NULL || *f == '\0')
		return -1;
	*v = strtoll(f, &end, 10);
	return *end ? -1 : 0;
}

static char *qix_dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* One recipient's five fields from *p onto env. */
static int qix_get_rcpt(char **p, struct q_env *env)
{
	char *addr, *state, *reply;
	long long attempts, next;
	struct q_rcpt *r;

	if (qix_get_field(p, &addr) < 0 || addr == NULL || qix_get_field(p, &state) < 0 ||
	    state == NULL || qix_get_num(p, &attempts) < 0 || qix_get_num(p, &next) < 0 ||
	    qix_get_field(p, &reply) < 0)
		return -1;
	q_env_add_rcpt(env, addr);
	r = &env->rcpt[env->nrcpt - 1];
	r->state = state[0] == 'd' ? RCPT_DELIVERED : state[0] == 'f' ? RCPT_FAILED : RCPT_PENDING;
	r->attempts = (int)attempts;
	r->next_attempt = (time_t)next;
	r->last_reply = qix_dup(reply);
	return 0;
}

int qindex_row_parse(char *line, struct q_env *env)
{
	char *p = line + 2, *id, *sender, *client, *helo, *msgid;
	long long created, size;

	memset(env, 0, sizeof(*env));
	if (strncmp(line, "m\t", 2) != 0 || qix_get_field(&p, &id) < 0 || id == NULL ||
	    !queue_id_valid(id) || qix_get_num(&p, &created) < 0 || qix_get_num(&p, &size) < 0 ||
	    qix_get_field(&p, &sender) < 0 || qix_get_field(&p, &client) < 0 ||
	    qix_get_field(&p, &helo) < 0 || qix_get_field(&p, &msgid) < 0)
		return -1;
	snprintf(env->id, sizeof(env->id), "%s", id);
	env->created = (time_t)created;
	env->size = (uint64_t)size;
	env->sender = xstrdup(sender ? sender : "");
	env->client = qix_dup(client);
	env->helo = qix_dup(helo);
	env->message_id = qix_dup(msgid);
	while (p != NULL)
		if (qix_get_rcpt(&p, env) < 0) {
			q_env_free(env);
			return -1;
		}
	return 0;
}
/* ------------------------------------------------------ due-time heap */

/* When a message needs the queue run: its earliest pending recipient's
 * next attempt, a recipient never tried counting from arrival (so mail
 * due longest goes first); with nothing pending, at once (to be removed). */
static int64_t qix_env_due(const struct q_env *env)
{
	int64_t due = INT64_MAX;

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct q_rcpt *r = &env->rcpt[i];
		int64_t t = r->next_attempt ? (int64_t)r->next_attempt : (int64_t)env->created;
		if (r->state == RCPT_PENDING && t < due)
			due = t;
	}
	return due == INT64_MAX ? (int64_t)env->created : due;
}

/* 1 if slot a comes before slot b: due earlier, or as due and older. */
static int qix_before(const struct qindex *ix, uint32_t a, uint32_t b)
{
	const struct qix_msg *x = &ix->msg[a], *y = &ix->msg[b];

	return x->due != y->due ? x->due < y->due : strcmp(x->id, y->id) < 0;
}

static void qix_heap_put(struct qindex *ix, uint32_t pos, uint32_t s)
{
	ix->heap[pos] = s;
	ix->msg[s].hpos = pos;
}

static void qix_heap_up(struct qindex *ix, uint32_t pos)
{
	uint32_t s = ix->heap[pos];

	while (pos > 0 && qix_before(ix, s, ix->heap[(pos - 1) / 2])) {
		qix_heap_put(ix, pos, ix->heap[(pos - 1) / 2]);
		pos = (pos - 1) / 2;
	}
	qix_heap_put(ix, pos, s);
}

static void qix_heap_down(struct qindex *ix, uint32_t pos)
{
	uint32_t s = ix->heap[pos];

	for (;;) {
		uint32_t c = 2 * pos + 1;
		if (c >= ix->nheap)
			break;
		if (c + 1 < ix->nheap && qix_before(ix, ix->heap[c + 1], ix->heap[c]))
			c++;
		if (!qix_before(ix, ix->heap[c], s))
			break;
		qix_heap_put(ix, pos, ix->heap[c]);
		pos = c;
	}
	qix_heap_put(ix, pos, s);
}

/* Gives slot s the due time due, in the heap or added to it. */
static void qix_heap_set(struct qindex *ix, uint32_t s, int64_t due)
{
	struct qix_msg *m = &ix->msg[s];

	if (m->hpos == QIX_NONE) {
		if (ix->nheap == ix->capheap) {
			ix->capheap = ix->capheap ? 2 * ix->capheap : 1024;
			ix->heap = xrealloc(ix->heap, ix->capheap * sizeof(*ix->heap));
		}
		m->due = due;
		qix_heap_put(ix, ix->nheap++, s);
		qix_heap_up(ix, m->hpos);
		return;
	}
	if (due < m->due) {
		m->due = due;
		qix_heap_up(ix, m->hpos);
	} else if (due > m->due) {
		m->due = due;
		qix_heap_down(ix, m->hpos);
	}
}

static void qix_heap_del(struct qindex *ix, uint32_t s)
{
	uint32_t pos = ix->msg[s].hpos, last;

	if (pos == QIX_NONE)
		return;
	ix->msg[s].hpos = QIX_NONE;
	last = ix->heap[--ix->nheap];
	if (pos == ix->nheap)
		return;
	qix_heap_put(ix, pos, last);
	qix_heap_up(ix, pos);
	qix_heap_down(ix, ix->msg[last].hpos);
}

void qindex_schedule(struct qindex *ix, const char *id, time_t when)
{
	uint32_t s = queue_id_valid(id) ? qix_find(ix, id) : QIX_NONE;

	if (s != QIX_NONE)
		qix_heap_set(ix, s, (int64_t)when);
}

int qindex_due_of(const struct qindex *ix, const char *id, time_t *due)
{
	uint32_t s = queue_id_valid(id) ? qix_find(ix, id) : QIX_NONE;

	if (s == QIX_NONE)
		return -1;
	*due = (time_t)ix->msg[s].due;
	return 0;
}

int qindex_priority(const struct qindex *ix, const char *id)
{
	uint32_t s = queue_id_valid(id) ? qix_find(ix, id) : QIX_NONE;

	return s == QIX_NONE ? -1 : ix->msg[s].prio;
}

int qindex_next_due(const struct qindex *ix, time_t until, char id[QUEUE_ID_MAX])
{
	const struct qix_msg *m;

	if (ix->nheap == 0 || (m = &ix->msg[ix->heap[0]])->due > (int64_t)until)
		return 0;
	memcpy(id, m->id, QIX_ID_LEN + 1);
	return 1;
}

int qindex_first_due(const struct qindex *ix, time_t *due)
{
	if (ix->nheap == 0)
		return 0;
	*due = (time_t)ix->msg[ix->heap[0]].due;
	return 1;
}

/* Brings slot s's due time forward to its arrival, or to when if sooner. */
static void qix_wake(struct qindex *ix, uint32_t s, int64_t when)
{
	int64_t t = ix->msg[s].created < when ? ix->msg[s].created : when;

	if (t < ix->msg[s].due)
		qix_heap_set(ix, s, t);
}

/* The number of link name, or -1 if no domain goes via it. */
static int32_t qix_link_find(const struct qindex *ix, const char *link)
{
	for (size_t i = 0; i < ix->links.n; i++)
		if (strcmp(ix->links.v[i], link) == 0)
			return (int32_t)i;
	return -1;
}

unsigned qindex_wake_link(struct qindex *ix, const char *link, time_t when)
{
	unsigned n = 0;
	int32_t l = qix_link_find(ix, link);

	for (uint32_t d = 0; l >= 0 && d < ix->ndom; d++) {
		if (ix->dom[d].link != l)
			continue;
		for (uint32_t k = ix->dom[d].head; k != QIX_NONE; k = ix->node[k].next, n++)
			qix_wake(ix, ix->node[k].msg, (int64_t)when);
	}
	return n;
}

/* Floyd's construction: the whole heap again in linear time. */
static void qix_heap_build(struct qindex *ix)
{
	for (uint32_t i = ix->nheap / 2; i-- > 0;)
		qix_heap_down(ix, i);
}

void qindex_wake_all(struct qindex *ix, time_t when)
{
	for (uint32_t i = 0; i < ix->nheap; i++) {
		struct qix_msg *m = &ix->msg[ix->heap[i]];
		int64_t t = m->created < (int64_t)when ? m->created : (int64_t)when;
		if (t < m->due)
			m->due = t;
	}
	qix_heap_build(ix);
}

/* ------------------------------------------- a link's mail, a reload */

static int qix_id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t qindex_link_ids(const struct qindex *ix, const char *link, struct strlist *out)
{
	size_t first = out->n;
	int32_t l = qix_link_find(ix, link);

	for (uint32_t d = 0; l >= 0 && d < ix->ndom; d++) {
		if (ix->dom[d].link != l)
			continue;
		for (uint32_t k = ix->dom[d].head; k != QIX_NONE; k = ix->node[k].next) {
			const struct qix_msg *m = &ix->msg[ix->node[k].msg];
			if (!qix_link_seen(ix, m, k, l)) /* once per message */
				strlist_add(out, m->id);
		}
	}
	if (out->n - first > 1)
		qsort(out->v + first, out->n - first, sizeof(*out->v), qix_id_cmp);
	return out->n - first;
}

void qindex_reclassify(struct qindex *ix)
{
	for (uint32_t s = 0; s < ix->nmsg; s++)
		if (ix->msg[s].id[0])
			qix_count(ix, s, -1);
	for (uint32_t d = 0; d < ix->ndom; d++)
		qix_dom_classify(ix, &ix->dom[d]);
	for (uint32_t s = 0; s < ix->nmsg; s++) {
		struct qix_msg *m = &ix->msg[s];
		if (!m->id[0])
			continue;
		m->held = 0;
		for (uint32_t n = m->nodes; n != QIX_NONE; n = ix->node[n].mnext)
			m->held |= ix->dom[ix->node[n].dom].held;
		qix_count(ix, s, 1);
	}
}
