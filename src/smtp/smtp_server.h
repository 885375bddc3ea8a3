/* SMTP server (RFC 5321): event-driven sessions on libevent that accept mail
 * into the queue. Invariant: "250" after DATA only once the queue
 * (queue_commit or queue_batch_commit) reported Q_OK. */
#ifndef SMTP_SMTP_SERVER_H
#define SMTP_SMTP_SERVER_H
#include <event2/event.h>

#include "mail/config.h"
#include "queue/queue.h"

struct smtp_server;

/* on_commit is called after each message is durably queued (for delivery);
 * inbound: it came from the provider's side (provider_networks, else a
 * client outside mynetworks, or an adopted session), not from the LAN. */
struct smtp_server *smtp_server_new(struct event_base *base, const struct config *cfg,
				    struct queue *q,
				    void (*on_commit)(const char *qid, int inbound, void *arg),
				    void *arg);
/* Listens on "host:port" or "[v6]:port" (service smtp, the server's
 * configuration as it is). -1 (event 1003 logged) on failure. */
int smtp_server_listen(struct smtp_server *srv, const char *addr);
/* Listens on item i of the configuration's listen setting, with its
 * service and -o overrides (mail/listen.h). */
int smtp_server_listen_item(struct smtp_server *srv, size_t i);
void smtp_server_free(struct smtp_server *srv);
/* The local submission socket at path (mode 0666): every local user's
 * sendmail speaks SMTP there; the peer's uid (SO_PEERCRED) becomes the
 * session's authenticated user, and it may relay like mynetworks. */
int smtp_server_listen_local(struct smtp_server *srv, const char *path);
/* Loads tls_cert_file and tls_key_file again into a new context for new
 * sessions; sessions in progress keep theirs. 1 reloaded, 0 no TLS
 * configured, -1 refused (why in err) and the old context stays. */
int smtp_server_reload_tls(struct smtp_server *srv, struct buf *err);
/* SMTP sessions open now. */
int smtp_server_sessions(const struct smtp_server *srv);
/* ... of them, the provider's side (see on_commit): a dial-up session stays
 * up while any is open; LAN clients do not keep a line up. */
int smtp_server_inbound_sessions(const struct smtp_server *srv);
/* The hub's ETRN (hub/hub.h: hub_etrn): offered in EHLO and answered
 * with etrn's one-line reply while set. */
void smtp_server_set_etrn(struct smtp_server *srv,
			  void (*etrn)(const char *client, const char *user, const char *param,
				       struct buf *reply, void *arg),
			  void *arg);

/* The hub's ODMR port (RFC 2645, hub/odmr.c): sessions of srv must
 * AUTH (CRAM-MD5 also without TLS), get 502 to MAIL, and may send ATRN.
 * atrn decides the reply (without CRLF) for the authenticated user; when it
 * returns 1 the reply ("250 ...") is written and the connection is handed to
 * take (its bufferevent, callbacks cleared, output still flushing); the
 * server session is then over. */
struct bufferevent;
void smtp_server_set_odmr(struct smtp_server *srv,
			  int (*atrn)(const char *client, const char *user, const char *param,
				      struct buf *reply, void *arg),
			  void (*take)(struct bufferevent *bev, const char *client,
				       const char *user, const char *param, void *arg),
			  void *arg);
/* XDMBATCH DUPLEX on the ODMR port (docs/batch-protocol.md 12): duplex
 * gives the held mail of domains ("" : all the user's) as an SMTP client
 * engine that is never started (smtp_client.h: smtpc_external_end ends it
 * and its done callback runs), or NULL with the refusal in reply. Its arg
 * is smtp_server_set_odmr's. */
struct smtpc;
void smtp_server_set_duplex(struct smtp_server *srv,
			    struct smtpc *(*duplex)(const char *client, const char *user,
						    const char *domains, struct buf *reply,
						    void *arg));
/* For a batch received outside a session of srv (XDMBATCH DUPLEX on a
 * direct line, dialup/direct.c): the receiver's settings, policy and commit
 * hook as an adopted session has them; addr, helo, peer_key are the caller's. */
struct batch_server_peer;
void smtp_server_batch_peer(const struct smtp_server *srv, struct batch_server_peer *p);
/* Runs a server session on an already connected bufferevent (the branch
 * after ATRN reversed the roles): greeting first, then SMTP as on a
 * listener; the session frees bev. on_close(quit, arg) is called when the
 * session ends (quit: the client sent QUIT); smtp_server_adopt_forget stops
 * that (the session goes on). peer is the client's address text. flags:
 * SMTP_ADOPT_TLS (the connection is under TLS already), SMTP_ADOPT_DIALMAIL
 * (the peer is known to be dialmail: it listed XDMBATCH in its own EHLO
 * reply on this connection, or it is a configured branch calling the hub's
 * answer line); XDMBATCH is offered only then. */
#define SMTP_ADOPT_TLS	    1u
#define SMTP_ADOPT_DIALMAIL 2u
struct smtp_adopted;
struct smtp_adopted *smtp_server_adopt(struct smtp_server *srv, struct bufferevent *bev,
				       const char *peer, unsigned flags,
				       void (*on_close)(int quit, void *arg), void *arg);
void smtp_server_adopt_forget(struct smtp_server *srv, struct smtp_adopted *a);

#endif
