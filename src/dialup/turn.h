/* retrieve = turn (RFC 821 TURN), the branch side of a dial-up session: EHLO,
 * TURN, and on 250 the connection becomes an SMTP server session on which the
 * provider delivers the held mail. Insecure (the site is not authenticated),
 * so it needs turn_enabled = yes. Invariant: done is called exactly once, from
 * the loop, unless the job is freed first. */
#ifndef DIALUP_TURN_H
#define DIALUP_TURN_H

#include "mail/config.h"
#include "dialup/session.h"
#include "lib/buf.h"

struct turn_branch;

/* retrieve = turn without turn_enabled = yes: a "path:line: [session]:"
 * line in err; returns the number of problems (0 or 1). */
int turn_config_check(const struct config *cfg, const char *path, struct buf *err);

/* Resolves (retrieve_connect) and connects to ctx->host port ctx->port;
 * NULL with why filled when it cannot start (done is then not called). */
struct turn_branch *turn_branch_start(const struct retrieval_ctx *ctx,
				      void (*done)(int ok, const char *text, void *arg), void *arg,
				      struct buf *why);
void turn_branch_free(struct turn_branch *t); /* NULL is fine; done is not called */

#endif
