/* The listen setting, master.cf style: each item is an address, then an
 * optional service and "-o name=value" overrides; commas or blanks between
 * words, a new address starts a new item. Invariant: cfg->listen and
 * cfg->listen_spec always have the same number of items. */
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"
#include "mail/config.h"
#include "mail/listen.h"

static const char *const services[] = {"smtp", "submission", "submissions", NULL};

const char *listen_service_name(enum listen_service sv)
{
	return services[sv];
}

static int listen_service_find(const char *word)
{
	for (int i = 0; services[i]; i++)
		if (strcmp(word, services[i]) == 0)
			return i;
	return -1;
}

static void listen_specs_free(struct listen_spec *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < v[i].n_o; j++)
			free(v[i].o[j].value);
		free(v[i].o);
	}
	free(v);
}

/* "name=value" after -o: a setting that may differ per listener, with a
 * value its row accepts. */
static int listen_opt_parse(struct listen_spec *sp, const char *word, struct buf *problem)
{
	const char *eq = strchr(word, '=');
	char *name = eq ? xstrndup(word, (size_t)(eq - word)) : xstrdup(word);
	const struct setting *row = config_setting(name);
	struct config scratch;
	int rc = -1;

	memset(&scratch, 0, sizeof(scratch));
	if (eq == NULL || eq[1] == '\0')
		buf_printf(problem, "-o %s: expected -o name=value", word);
	else if (row == NULL || !(row->flags & CONFIG_F_LISTEN))
		buf_printf(problem, "-o %s: %s cannot be set per listener", word, name);
	else if (settings_parse_value(row, &scratch, eq + 1, problem) < 0)
		buf_printf(problem, " (in -o %s)", word);
	else {
		sp->o = xrealloc(sp->o, (sp->n_o + 1) * sizeof(*sp->o));
		sp->o[sp->n_o++] = (struct listen_opt){row, xstrdup(eq + 1)};
		rc = 0;
	}
	free(name);
	return rc;
}

/* One word after an address: a service (*have_sv once given) or -o's
 * argument (*want_opt). */
static int listen_word(struct listen_spec *sp, const char *word, int *want_opt, int *have_sv,
		       struct buf *problem)
{
	int sv;

	if (*want_opt) {
		*want_opt = 0;
		return listen_opt_parse(sp, word, problem);
	}
	if (strcmp(word, "-o") == 0) {
		*want_opt = 1;
		return 0;
	}
	sv = listen_service_find(word);
	if (sv < 0 || (*have_sv)++) {
		buf_printf(problem,
			   "'%s': expected host:port, one service (smtp, submission, "
			   "submissions) or -o name=value",
			   word);
		return -1;
	}
	sp->service = (enum listen_service)sv;
	return 0;
}

/* A word that starts a new item: it looks like host:port or [v6]:port. */
static int listen_is_addr(const char *word)
{
	return word[0] == '[' || (strchr(word, ':') && strchr(word, '=') == NULL && word[0] != '-');
}

int listen_parse(const struct setting *s, void *base, const char *v, struct buf *problem)
{
	struct config *cfg = base;
	struct strlist words = {0}, addrs = {0};
	struct listen_spec *specs = NULL;
	int want_opt = 0, have_sv = 0, bad = 0;

	strlist_split(&words, v);
	for (size_t i = 0; i < words.n && !bad; i++) {
		if (!want_opt && (addrs.n == 0 || listen_is_addr(words.v[i]))) {
			bad = config_check_listen(words.v[i], problem) < 0;
			strlist_add(&addrs, words.v[i]);
			specs = xrealloc(specs, addrs.n * sizeof(*specs));
			memset(&specs[addrs.n - 1], 0, sizeof(*specs));
			have_sv = 0;
		} else
			bad = listen_word(&specs[addrs.n - 1], words.v[i], &want_opt, &have_sv,
					  problem) < 0;
	}
	if (!bad && want_opt) {
		buf_puts(problem, "-o without name=value");
		bad = 1;
	}
	if (!bad && s->max > 0 && (long long)addrs.n > s->max) {
		buf_printf(problem, "%zu items; allowed 0 to %lld", addrs.n, s->max);
		bad = 1;
	}
	strlist_free(&words);
	if (bad) {
		listen_specs_free(specs, addrs.n);
		strlist_free(&addrs);
		return -1;
	}
	listen_release(s, cfg);
	*(struct strlist *)((char *)cfg + s->off) = addrs;
	cfg->listen_spec = specs;
	return 0;
}

void listen_format(const struct setting *s, const void *base, struct buf *out)
{
	const struct config *cfg = base;
	const struct strlist *l = (const struct strlist *)((const char *)cfg + s->off);

	for (size_t i = 0; i < l->n; i++) {
		const struct listen_spec *sp = &cfg->listen_spec[i];

		buf_printf(out, "%s%s", i ? ", " : "", l->v[i]);
		if (sp->service != LISTEN_SMTP)
			buf_printf(out, " %s", listen_service_name(sp->service));
		for (size_t j = 0; j < sp->n_o; j++)
			buf_printf(out, " -o %s=%s", sp->o[j].row->name, sp->o[j].value);
	}
}

void listen_release(const struct setting *s, void *base)
{
	struct config *cfg = base;
	struct strlist *l = (struct strlist *)((char *)cfg + s->off);

	listen_specs_free(cfg->listen_spec, l->n);
	cfg->listen_spec = NULL;
	strlist_free(l);
}

void listen_swap(const struct setting *s, void *a, void *b)
{
	struct config *x = a, *y = b;
	struct strlist *lx = (struct strlist *)((char *)x + s->off);
	struct strlist *ly = (struct strlist *)((char *)y + s->off);
	struct strlist tl = *lx;
	struct listen_spec *ts = x->listen_spec;

	*lx = *ly;
	*ly = tl;
	x->listen_spec = y->listen_spec;
	y->listen_spec = ts;
}

void listen_config(const struct config *cfg, size_t i, struct config *out)
{
	const struct listen_spec *sp = &cfg->listen_spec[i];
	struct buf problem = BUF_INIT;

	*out = *cfg;
	for (size_t j = 0; j < sp->n_o; j++)
		if (settings_parse_value(sp->o[j].row, out, sp->o[j].value, &problem) < 0)
			panic("listen: -o %s=%s: %s", sp->o[j].row->name, sp->o[j].value,
			      buf_cstr(&problem));
	buf_free(&problem);
}
