/* Fuzzes the address grammar (mail/smtp_addr.c): the input is what follows
 * "MAIL FROM:" or "RCPT TO:", a path and its ESMTP parameters; its first
 * byte says whether <> is allowed. Checks what the parser promises: a
 * parsed path fits the RFC 5321 limits, its mailbox is local@domain (or ""
 * for <>), and *end points into the input. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mail/smtp_addr.h"
#include "lib/xmalloc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void check_path(const char *s, const struct smtp_path *p, const char *end)
{
	if (end <= s || end > s + strlen(s) || end[-1] != '>')
		abort();
	if (p->is_null) {
		if (*p->mailbox != '\0')
			abort();
		return;
	}
	if (strlen(p->local) > SMTP_LOCAL_MAX && !p->quoted)
		abort();
	if (strlen(p->domain) > SMTP_DOMAIN_MAX || strchr(p->mailbox, '@') == NULL)
		abort();
	if (!p->literal && !smtp_addr_domain_valid(p->domain, strlen(p->domain)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_path p;
	struct smtp_params ps;
	const char *end = NULL, *why = NULL;
	char *s;

	if (size == 0)
		return 0;
	s = xmalloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	smtp_addr_domain_valid((const char *)data + 1, size - 1);
	if (smtp_path_parse(s, data[0] & 1, &p, &end, &why) == 0) {
		check_path(s, &p, end);
		memset(&ps, 0, sizeof(ps));
		if (smtp_params_parse(end, &ps, &why) == 0) {
			for (size_t i = 0; i < ps.n; i++)
				if (smtp_params_get(&ps, ps.v[i].keyword) == NULL)
					abort();
		} else if (why == NULL)
			abort();
		smtp_params_free(&ps);
		smtp_path_free(&p);
	} else if (why == NULL)
		abort();
	free(s);
	return 0;
}
