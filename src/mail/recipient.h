/* Who a recipient is: one of our local users (after aliases), someone
 * elsewhere, or a local address that does not exist. */
#ifndef MAIL_RECIPIENT_H
#define MAIL_RECIPIENT_H
#include "mail/config.h"

enum rcpt_class { RCLASS_LOCAL, RCLASS_REMOTE, RCLASS_UNKNOWN_LOCAL, RCLASS_INVALID };

/* addr is "local@domain" (already syntax-checked by the caller). */
enum rcpt_class recipient_classify(const struct config *cfg, const char *addr);
/* 1 if localpart is a listed recipient, postmaster, or an alias. */
int recipient_local_exists(const struct config *cfg, const char *localpart);

/* 1 if user may name a mailbox directory: [a-z0-9._+-], not empty, no
 * leading '.', no "..". Lower case only: callers lower-case first. */
int recipient_user_valid(const char *user);

#endif
