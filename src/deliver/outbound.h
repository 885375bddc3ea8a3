/* Outbound delivery over SMTP: due remote recipients grouped by destination
 * (a smarthost, or a domain's MX hosts), one SMTP client session per
 * connection within the connection limits, results stored in the queue with
 * events, tracking lines and DSNs. Invariant: a recipient's state changes
 * only after the remote server's final reply for it, and a message's state is
 * written once its connection is over, so a crash repeats, never loses. */
#ifndef DELIVER_OUTBOUND_H
#define DELIVER_OUTBOUND_H
#include <event2/event.h>

#include "mail/config.h"
#include "queue/queue.h"
#include "smtp/dsn.h"

struct outbound;

/* kick(qid, arg): a new message (a DSN) was queued and wants delivery. */
struct outbound *outbound_new(struct event_base *base, const struct config *cfg, struct queue *q,
			      void (*kick)(const char *qid, void *arg), void *arg);
/* Inbound duplicate suppression for hand-off routes (lmtp, smtp) of local
 * domains: the same record Maildir delivery uses (deliver/dedup.h). */
struct dedup;
void outbound_set_dedup(struct outbound *o, struct dedup *dd);
/* Closes every connection (final results are stored; the rest stays queued). */
void outbound_free(struct outbound *o);
/* The configuration changed (a reload): what was derived from it at
 * start (transfer mode, retry policy, postmaster) is derived again;
 * connections in progress go on as they are. */
void outbound_reconfigure(struct outbound *o);

/* 1 if the route for remote address addr is "local" (Maildir delivery). */
int outbound_local_route(struct outbound *o, const char *addr);
/* 1 if addr is of a local domain that has its own lmtp or smtp route: the
 * site's mailbox server gets it instead of the Maildir. */
int outbound_mailbox_route(struct outbound *o, const char *addr);
/* The smtp_*_timeout settings as the SMTP client engine takes them (every
 * engine: routes, the ODMR hub's delivery, the direct line). */
struct smtpc_timeouts;
void outbound_timeouts(const struct config *cfg, struct smtpc_timeouts *t);

/* A delivery pass: pass_scheduled when one is asked for, pass_begin (full:
 * the whole queue is scanned), outbound_offer for each due remote recipient
 * (env->rcpt[i]; force: even if not yet due), pass_end starts connections. */
void outbound_pass_scheduled(struct outbound *o);
void outbound_pass_begin(struct outbound *o, int full);
/* Returns 1 if the recipient was taken (or is held), 0 if it cannot go now
 * (no route, its link is down, transfer_mode inbound-only). */
int outbound_offer(struct outbound *o, const struct q_env *env, size_t i, int force);
/* A due recipient that cannot go now: failed, with a DSN, once the message's
 * lifetime is over (state in env only; the caller stores it). 1 if changed. */
int outbound_expire_waiting(struct outbound *o, struct q_env *env, size_t i);
void outbound_pass_end(struct outbound *o);
/* Between two slices of a long pass (the pass stays open, so idle and
 * release checks wait for its end): starts connections for what was
 * offered so far. */
void outbound_pass_slice(struct outbound *o);

/* Queues an RFC 3464 report about n recipients of env (all with the same
 * action) to the sender, or the postmaster for a null sender; nothing when
 * no report is due. Q_OK, or Q_TEMPFAIL if it could not be queued. */
int outbound_dsn(struct outbound *o, const struct q_env *env, const struct buf *content,
		 const struct dsn_rcpt *rc, size_t n);

/* Links: see delivery_link_up and friends in deliver/delivery.h. */
void outbound_link_up(struct outbound *o, const char *name, long bps,
		      void (*on_idle)(const char *name, void *arg), void *arg);
void outbound_link_down(struct outbound *o, const char *name);
int outbound_link_busy(struct outbound *o, const char *name);
/* Connections to a server without CHUNKING that keep a link of bps bit/s
 * busy while each waits a round trip (rtt_us) per message of mean_bytes:
 * 1 + ceil(bandwidth-delay product / mean_bytes), at most cap; cap when a
 * figure is unknown (0). */
int outbound_parallel(int cap, long bps, long long rtt_us, uint64_t mean_bytes);
void outbound_link_stats(struct outbound *o, const char *name, unsigned *msgs_out,
			 unsigned long long *bytes_out);

/* Hub (ETRN): held recipients of domain (sub: and its subdomains) are sent
 * to host:port until one full pass has offered them and their connections
 * are over (event 3030); outbound_released says if addr is in such a
 * release now (it is then due whatever its retry time). */
void outbound_release(struct outbound *o, const char *domain, int sub, const char *host, int port);
int outbound_released(struct outbound *o, const char *addr);

/* What earlier connections learned about a peer, an empty file
 * DIR/peers/NAME (kept across restarts): set (yes), cleared, or asked. */
void outbound_peer_set(struct queue *q, const char *name, int yes);
int outbound_peer_has(struct queue *q, const char *name);

#endif
