/* dialmail report: the status page's pictures for a period (--since, 30
 * days by default) as one self-contained HTML file, from the files of the
 * state directory alone (ledger, queue samples, queue): it works whether
 * the daemon runs or not, for mailing to head office. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "status/history.h"
#include "status/queue_summary.h"
#include "status/statuspage.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "mail/config.h"
#include "queue/queue.h"

#define EX_USAGE  64
#define EX_CONFIG 78
#define EX_CANTCR 73

struct report_opts {
	const char *dir, *config, *output;
	int64_t since; /* usec */
};

static const char report_usage[] =
    "usage: dialmail report [--dir DIR] [--config FILE] [--since T] [--output FILE]\n"
    "  --since T     30d (default), 2w, 24h, or 2026-11-01T00:00:00Z (UTC)\n"
    "  --output FILE write the HTML there (default: standard output)\n";

/* -1 after a usage message, -2 after --help. */
static int report_opts(int argc, char **argv, struct report_opts *o)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},   {"config", required_argument, NULL, 'c'},
	    {"since", required_argument, NULL, 's'}, {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},	     {NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	cli_parse_since("30d", &o->since);
	while ((c = getopt_long(argc, argv, "d:c:s:o:h", opts, NULL)) != -1) {
		if (c == 'd')
			o->dir = optarg;
		else if (c == 'c')
			o->config = optarg;
		else if (c == 'o')
			o->output = optarg;
		else if (c == 's' && cli_parse_since(optarg, &o->since) == 0)
			continue;
		else {
			if (c == 's')
				fprintf(stderr,
					"dialmail report: --since %s: not a time or duration\n",
					optarg);
			fputs(report_usage, c == 'h' ? stdout : stderr);
			return c == 'h' ? -2 : -1;
		}
	}
	o->dir = config_spool_dir(o->dir);
	return optind == argc ? 0 : (fputs(report_usage, stderr), -1);
}

/* The page for the period, with the queue as it is now. */
static int report_render(const struct report_opts *o, const struct config *cfg, struct buf *out)
{
	struct queue *q = NULL;
	struct queue_summary qs;
	struct history hist;
	char host[256] = "";
	struct status_view v = {.title = "report", .queue = &qs, .hist = &hist, .now = clock_now()};

	if (cli_queue_open(o->dir, &q) < 0)
		return -1;
	queue_summary_take(q, cfg, &qs);
	queue_close(q);
	if (cfg->hostname[0] == '\0' && gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "?");
	v.host = cfg->hostname[0] ? cfg->hostname : host;
	history_load(&hist, o->dir, (time_t)(o->since / 1000000), v.now);
	statuspage_render(out, &v);
	history_free(&hist);
	return 0;
}

static int report_write(const char *path, const struct buf *b)
{
	FILE *f = path ? fopen(path, "we") : stdout;

	if (f == NULL || fwrite(b->data, 1, b->len, f) != b->len || (path && fclose(f) != 0)) {
		fprintf(stderr, "dialmail report: cannot write %s: %s\n", path ? path : "output",
			strerror(errno));
		return -1;
	}
	return path ? 0 : fflush(stdout);
}

int cmd_report(int argc, char **argv)
{
	struct report_opts o = {0};
	struct config cfg;
	struct buf err = BUF_INIT, out = BUF_INIT;
	char *recorded;
	int rc = report_opts(argc, argv, &o);

	if (rc < 0)
		return rc == -2 ? 0 : EX_USAGE;
	recorded = o.config ? NULL : config_recorded_path(o.dir);
	if (config_load(&cfg, o.config ? o.config : recorded, &err) < 0) {
		fprintf(stderr, "%s", buf_cstr(&err));
		rc = EX_CONFIG;
	} else {
		rc = report_render(&o, &cfg, &out) < 0 ? 1
		     : report_write(o.output, &out)    ? EX_CANTCR
						       : 0;
		config_free(&cfg);
	}
	free(recorded);
	buf_free(&err);
	buf_free(&out);
	return rc;
}
