/* Inbound retrieval, the branch side of a dial-up session: after outbound
 * delivery, ask the provider for the mail it holds (ETRN, RFC 1985), or run
 * a command, and say when retrieval is over. Invariant: a job reports done
 * exactly once, or is cancelled and reports nothing; it never outlives its
 * session (the session cancels it when it hangs up). */
#ifndef DIALUP_RETRIEVE_H
#define DIALUP_RETRIEVE_H
#include <stdio.h>

#include <event2/event.h>

#include "mail/config.h"
#include "dialup/session.h"
#include "lib/buf.h"

/* The methods: none, etrn, command, atrn (hub/odmr.c), turn (dialup/turn.c). */
const struct retrieval *retrieve_method(const char *name);
void retrieve_cancel(struct retrieve_job *job); /* NULL is fine */

/* The retrieval keys of [session] (etrn_domains, etrn_grace,
 * retrieve_command, retrieve_timeout). line returns 1 for a key that is not
 * one of them, 0 when parsed, -1 with problem filled. */
void retrieve_config_defaults(struct session_config *sc);
int retrieve_config_line(struct session_config *sc, const char *key, const char *value,
			 struct buf *problem);
/* After the file: the method has what it needs. Appends "path:line:
 * [session]: problem" lines; returns their number. */
int retrieve_check(const struct session_config *sc, const char *path, struct buf *err);
void retrieve_show(const struct session_config *sc, FILE *out);
void retrieve_config_free(struct session_config *sc); /* the retrieval fields only */

/* The connection of the etrn, atrn and turn clients: host resolved by the
 * daemon's c-ares resolver (dns_servers; an address needs no DNS), its
 * addresses tried in turn, each within timeout_s. cb runs once, from the
 * loop: with the connected bufferevent (the caller's now, no callbacks set,
 * reading off) and why NULL, or with bev NULL and why in words. NULL with
 * why filled (cb not called) if no resolver can be made. */
struct bufferevent;
struct retrieve_conn;
typedef void (*retrieve_conn_cb)(struct bufferevent *bev, const char *why, void *arg);
struct retrieve_conn *retrieve_connect(struct event_base *base, const struct config *cfg,
				       const char *host, int port, int timeout_s,
				       retrieve_conn_cb cb, void *arg, struct buf *why);
void retrieve_connect_cancel(struct retrieve_conn *c); /* NULL is fine; cb not called */
/* Takes over the bev cb got: callbacks, timeout_s for reads and writes,
 * reading and writing on. */
void retrieve_conn_own(struct bufferevent *bev, void (*read_cb)(struct bufferevent *, void *),
		       void (*event_cb)(struct bufferevent *, short, void *), void *arg,
		       int timeout_s);

/* What an ETRN reply code means (RFC 1985 section 5), in words. */
const char *retrieve_etrn_meaning(int code);

#endif
