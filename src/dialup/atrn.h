/* ATRN retrieval, the branch's side of On-Demand Mail Relay (RFC 2645):
 * `retrieve = atrn` in [session]. Invariant: done is called exactly once
 * per started job, never from inside atrn_start. */
#ifndef DIALUP_ATRN_H
#define DIALUP_ATRN_H
#include <stdio.h>

#include "dialup/session.h"
#include "lib/buf.h"

struct atrn_branch;

/* The ATRN keys of [session] (atrn_host, atrn_domains, atrn_auth,
 * atrn_tls, atrn_ca, atrn_fingerprint); 1 for another key, 0 when parsed,
 * -1 with problem filled. */
int atrn_config_line(struct session_config *sc, const char *key, const char *value,
		     struct buf *problem);
/* retrieve = atrn has what it needs; else the problem text (static). */
const char *atrn_config_problem(const struct session_config *sc);
void atrn_config_show(const struct session_config *sc, FILE *out);
void atrn_config_free(struct session_config *sc);

/* Runs the ATRN retrieval: done(ok, text, arg) once at the end (the hub's
 * QUIT, a refusal, or a failure), never from inside atrn_start.
 * NULL (done not called) only if the job cannot start at all: why filled. */
struct atrn_branch *atrn_start(const struct retrieval_ctx *ctx,
			       void (*done)(int ok, const char *text, void *arg), void *arg,
			       struct buf *why);
void atrn_free(struct atrn_branch *b); /* cancels; done not called */

#endif
