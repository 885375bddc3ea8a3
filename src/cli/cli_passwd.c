/* dialmail hash-password: a crypt(3) hash for auth_users_file, from a
 * password read on standard input (one line), so it never shows in ps.
 * Invariant: the password is wiped from memory before exit. */
#include <crypt.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int hash_usage(FILE *out, int rc)
{
	fprintf(out, "usage: dialmail hash-password [--sha512] < password\n"
		     "  prints a crypt(3) hash (yescrypt, or SHA-512 with --sha512) for a line of\n"
		     "  auth_users_file: USER HASH\n");
	return rc;
}

/* One line of stdin without its newline, or NULL. */
static char *hash_read_line(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);

	if (n <= 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

int cmd_hash_password(int argc, char **argv)
{
	static const struct option opts[] = {{"sha512", no_argument, NULL, 's'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *prefix = "$y$";
	struct crypt_data cd;
	char *pass, *salt;
	const char *hash;
	int c;

	while ((c = getopt_long(argc, argv, "sh", opts, NULL)) != -1) {
		if (c == 's')
			prefix = "$6$";
		else
			return hash_usage(c == 'h' ? stdout : stderr, c == 'h' ? 0 : 64);
	}
	if (optind != argc)
		return hash_usage(stderr, 64);
	if ((pass = hash_read_line()) == NULL || *pass == '\0') {
		fprintf(stderr, "hash-password: no password on standard input\n");
		free(pass);
		return 65;
	}
	salt = crypt_gensalt_ra(prefix, 0, NULL, 0);
	memset(&cd, 0, sizeof(cd));
	hash = salt ? crypt_rn(pass, salt, &cd, (int)sizeof(cd)) : NULL;
	explicit_bzero(pass, strlen(pass));
	free(pass);
	free(salt);
	if (hash == NULL || hash[0] == '*') {
		fprintf(stderr, "hash-password: crypt(3) failed\n");
		return 70;
	}
	printf("%s\n", hash);
	explicit_bzero(&cd, sizeof(cd));
	return 0;
}
