/* check-config and show-config: thin front ends over config_load and
 * config_show, so the file, the checker and the listing never disagree.
 * Exit codes: 0 ok, 64 usage (EX_USAGE), 78 bad configuration (EX_CONFIG). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "mail/config.h"
#include "lib/buf.h"

#define EX_OK	  0
#define EX_USAGE  64
#define EX_CONFIG 78

static const struct option config_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Loads path (or the embedded defaults); on error prints every problem. */
static int cli_config_load(struct config *cfg, const char *path)
{
	struct buf err = BUF_INIT;
	size_t n = 0;

	if (config_load(cfg, path, &err) == 0) {
		for (const char *w = buf_cstr(&cfg->warnings); *w; w = strchr(w, '\n') + 1)
			fprintf(stderr, "warning: %.*s\n", (int)strcspn(w, "\n"), w);
		buf_free(&err);
		return 0;
	}
	for (size_t i = 0; i < err.len; i++)
		n += err.data[i] == '\n';
	fputs(buf_cstr(&err), stderr);
	fprintf(stderr, "%s: %zu error%s\n", path ? path : "embedded defaults", n,
		n == 1 ? "" : "s");
	buf_free(&err);
	return -1;
}

int cmd_check_config(int argc, char **argv)
{
	const char *path = NULL;
	struct config cfg;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "c:h", config_opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			printf("usage: dialmail check-config [--config FILE]\n");
			return EX_OK;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	if (cli_config_load(&cfg, path) < 0)
		return EX_CONFIG;
	printf("%s: ok\n", path ? path : "embedded defaults");
	config_free(&cfg);
	return EX_OK;
usage:
	fprintf(stderr, "usage: dialmail check-config [--config FILE]\n");
	return EX_USAGE;
}

/* config_show's output as text, to pick lines from. */
static char *show_text(const struct config *cfg, int only_changed)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return NULL;
	config_show(cfg, f, only_changed);
	fclose(f);
	return text;
}

/* The "name = value" line of setting name in text, up to the [aliases]
 * block (whose names are not settings); its length in *len. */
static const char *show_find(const char *text, const char *name, size_t *len)
{
	size_t n = strlen(name);

	for (const char *l = text; *l && *l != '['; l += *len + (l[*len] == '\n')) {
		*len = strcspn(l, "\n");
		if (strncmp(l, name, n) == 0 && strncmp(l + n, " =", 2) == 0)
			return l;
	}
	return NULL;
}

/* Prints the named settings in the order given; unknown names are usage
 * errors, and nothing is printed unless every name is known. */
static int show_names(const struct config *cfg, int only_changed, char **names, int n)
{
	char *all = show_text(cfg, 0), *changed = show_text(cfg, only_changed);
	int rc = EX_OK;
	size_t len;

	if (all == NULL || changed == NULL) {
		perror("dialmail: show-config");
		rc = EX_CONFIG;
		goto done;
	}
	for (int i = 0; i < n; i++)
		if (show_find(all, names[i], &len) == NULL) {
			fprintf(stderr, "dialmail: show-config: unknown setting '%s'\n", names[i]);
			rc = EX_USAGE;
		}
	for (int i = 0; i < n && rc == EX_OK; i++) {
		const char *l = show_find(changed, names[i], &len);
		if (l)
			printf("%.*s\n", (int)len, l);
	}
done:
	free(all);
	free(changed);
	return rc;
}

int cmd_show_config(int argc, char **argv)
{
	const char *path = NULL;
	int only_changed = 0, c, rc;
	struct config cfg;

	optind = 0;
	while ((c = getopt_long(argc, argv, "c:nh", config_opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			only_changed = 1;
			break;
		case 'h':
			printf("usage: dialmail show-config [--config FILE] [-n] [NAME...]\n");
			return EX_OK;
		default:
			fprintf(stderr,
				"usage: dialmail show-config [--config FILE] [-n] [NAME...]\n");
			return EX_USAGE;
		}
	}
	if (cli_config_load(&cfg, path) < 0)
		return EX_CONFIG;
	if (optind < argc) {
		rc = show_names(&cfg, only_changed, argv + optind, argc - optind);
	} else {
		config_show(&cfg, stdout, only_changed);
		rc = EX_OK;
	}
	fflush(stdout);
	config_free(&cfg);
	return rc;
}
