/* Strict parser for SMTP paths and ESMTP parameters (RFC 5321 4.1.2, 4.5.3):
 * "<[@route,@route:]local@domain>" and "KEY[=VALUE] ...". No policy here:
 * the caller decides what a source route or a '%' in a local part means. */
#ifndef MAIL_SMTP_ADDR_H
#define MAIL_SMTP_ADDR_H
#include <stddef.h>

#define SMTP_LOCAL_MAX	64  /* octets in a local part */
#define SMTP_DOMAIN_MAX 255 /* octets in a domain */
#define SMTP_PATH_MAX	256 /* octets in a path, angle brackets included */
#define SMTP_PARAMS_MAX 16  /* ESMTP parameters on one command */

struct smtp_path {
	char *mailbox; /* "local@domain": domain lower case, local part as
			  given (quotes dropped when not needed); "" for <> */
	char *local;   /* local part with quoting removed ("" for <>) */
	char *domain;  /* lower case domain, or "[192.0.2.1]" / "[ipv6:...]" */
	int is_null;   /* <> */
	int has_route; /* a source route "@a,@b:" was given (and dropped) */
	int quoted;    /* the local part was a quoted string */
	int literal;   /* the domain is an address literal */
};

struct smtp_param {
	char *keyword; /* as given */
	char *value;   /* NULL when there was no "=" */
};

struct smtp_params {
	struct smtp_param v[SMTP_PARAMS_MAX];
	size_t n;
};

/* Parses a path at s. allow_null permits "<>". On success returns 0, fills p
 * (free with smtp_path_free) and sets *end just past the '>'. On failure
 * returns -1 and sets *why to a short reason; p is left empty. */
int smtp_path_parse(const char *s, int allow_null, struct smtp_path *p, const char **end,
		    const char **why);
void smtp_path_free(struct smtp_path *p);

/* Parses what follows a path: "" or blanks, or " KEY[=VALUE] ...". Returns
 * 0 or -1 with *why set. Free with smtp_params_free (also after -1). */
int smtp_params_parse(const char *s, struct smtp_params *out, const char **why);
void smtp_params_free(struct smtp_params *ps);
/* The parameter with this keyword (case-insensitive), or NULL. */
const struct smtp_param *smtp_params_get(const struct smtp_params *ps, const char *keyword);

/* 1 if s is a syntactically valid domain (RFC 5321 Domain, no trailing dot). */
int smtp_addr_domain_valid(const char *s, size_t len);

#endif
