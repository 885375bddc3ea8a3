/* Policy lookups: what the configuration says about a domain or a user
 * (held, claimable by ATRN) and checks of configured items. No daemon state:
 * the SMTP server asks these and knows nothing of holds or routes. */
#ifndef MAIL_POLICY_H
#define MAIL_POLICY_H
#include <stddef.h>

#include "lib/buf.h"
#include "mail/policy.h"
#include "mail/config.h"

/* 1 if s (n bytes) is a domain as ATRN, ETRN and the settings name it:
 * letters, digits, '-', '.', not starting or ending with '.'. */
int policy_domain_ok(const char *s, size_t n);
/* 1 if domain (lower case) is listed in hold_domains: the SMTP server
 * accepts it from anyone, as a backup MX would. */
int policy_hold_domain(const struct config *cfg, const char *domain);
struct smtp_path;
enum policy_rcpt { POLICY_RCPT_OK, POLICY_RCPT_RELAY_DENIED, POLICY_RCPT_UNKNOWN };
/* Relay control for one recipient, as RCPT and XDMBATCH apply it: a local
 * user, a held domain, or anything for a client that may relay. A local
 * part with % ! @ or a source route is never taken as local from a client
 * that may not relay: those are the classic relay tricks. */
enum policy_rcpt policy_rcpt(const struct config *cfg, int may_relay, const struct smtp_path *p);
/* 1 if mail for domain stays queued until an ETRN: hold_domains or a
 * `hold` route. */
int policy_held(const struct config *cfg, const char *domain);
/* 1 if domain is node, or (sub) one of its subdomains; ASCII case
 * ignored (ETRN "@node"). */
int policy_domain_under(const char *domain, const char *node, int sub);
/* 1 if anything is held here (hold_domains, a hold route): ETRN offered. */
int policy_hub_enabled(const struct config *cfg);
/* "domain=host[:port]" into its parts (host and domain malloc'd). */
int policy_split_etrn_host(const char *item, char **domain, char **host, int *port);
/* Check of one etrn_hosts item, "domain=host[:port]" (config table). */
int policy_check_etrn_host(const char *item, struct buf *problem);
/* Check of one odmr_domains item, "user=domain" (config table). */
int policy_check_odmr_domain(const char *item, struct buf *problem);
/* 1 if user may claim domain (odmr_domains). */
int policy_odmr_user_owns(const struct config *cfg, const char *user, const char *domain);
/* Check of one dns_servers item (config table): "ip", "ip:port", "[ipv6]:port". */
int policy_check_dns_server(const char *item, struct buf *problem);

#endif
