/* Recipient classification for RCPT and delivery. Invariant: an address is
 * RCLASS_LOCAL only when its lower-cased local part is a safe mailbox name
 * and a listed recipient, postmaster or alias: a stranger's local part never
 * becomes a path. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "mail/recipient.h"
#include "lib/xmalloc.h"

int recipient_user_valid(const char *user)
{
	if (user[0] == '\0' || user[0] == '.' || strstr(user, "..") != NULL)
		return 0;
	for (const char *p = user; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_' || *p == '+' || *p == '-'))
			return 0;
	return 1;
}

static void recipient_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

int recipient_local_exists(const struct config *cfg, const char *localpart)
{
	if (strcmp(localpart, "postmaster") == 0)
		return 1;
	if (strlist_has(&cfg->local_recipients, localpart))
		return 1;
	return config_alias(cfg, localpart) != NULL;
}

enum rcpt_class recipient_classify(const struct config *cfg, const char *addr)
{
	const char *at = strrchr(addr, '@');
	enum rcpt_class cls;
	char *local, *domain;

	if (at == NULL || at == addr || at[1] == '\0')
		return RCLASS_INVALID;
	local = xstrndup(addr, (size_t)(at - addr));
	domain = xstrdup(at + 1);
	recipient_lower(local);
	recipient_lower(domain);
	if (!config_is_local_domain(cfg, domain))
		cls = RCLASS_REMOTE;
	else if (recipient_user_valid(local) && recipient_local_exists(cfg, local))
		cls = RCLASS_LOCAL;
	else
		cls = RCLASS_UNKNOWN_LOCAL;
	free(local);
	free(domain);
	return cls;
}
