/* dialtest: runs one round of the link engine (src/link/link.h) against the
 * phone book of a configuration file and prints the outcome and the events
 * it wrote. A test driver for the dialer until `dialmail dial` exists.
 * Exit status: 0 link came up, 1 every entry failed, 64 usage, 78 config. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/event.h"
#include "daemon/modules.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "link/link.h"
#include "link/phonebook.h"

static const char dialtest_usage[] =
    "usage: dialtest --config FILE --dir DIR [--lock-dir DIR] [--window SECS]\n"
    "                [--check-port PORT] [--hold MS] [ENTRY...]\n";

struct dialtest {
	int check_port;
};

static void dialtest_progress(void *arg, const char *line)
{
	printf("progress: %s\n", line);
	fflush(stdout);
}

/* The mail-path check: an SMTP greeting (220) from 127.0.0.1:PORT in 5 s. */
static int dialtest_check(void *arg, const char *entry, struct buf *why)
{
	struct dialtest *t = arg;
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)t->check_port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct pollfd p = {fd, POLLIN, 0};
	char greet[64] = "";
	ssize_t n = 0;

	if (t->check_port == 0)
		return 0;
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		buf_printf(why, "no connection to 127.0.0.1:%d", t->check_port);
		goto fail;
	}
	if (poll(&p, 1, 5000) == 1)
		n = read(fd, greet, sizeof(greet) - 1);
	if (n < 3 || strncmp(greet, "220", 3) != 0) {
		buf_printf(why, "no SMTP greeting from 127.0.0.1:%d", t->check_port);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

static void dialtest_print_events(const char *dir)
{
	char *path = xasprintf("%s/log/events.jsonl", dir);
	struct buf b = BUF_INIT;

	if (fs_read_file(path, &b) == 0)
		printf("events:\n%s", buf_cstr(&b));
	buf_free(&b);
	free(path);
}

/* Entries named on the command line, or the whole phone book in order. */
static const struct phonebook_entry **dialtest_entries(const struct config *cfg, char **names,
						       int nnames, size_t *n)
{
	const struct phonebook *pb = cfg->phonebook;
	const struct phonebook_entry **v;

	*n = nnames ? (size_t)nnames : (pb ? pb->n : 0);
	v = xcalloc(*n + 1, sizeof(*v));
	for (size_t i = 0; i < *n; i++) {
		v[i] = nnames ? phonebook_find(pb, names[i]) : &pb->v[i];
		if (v[i] == NULL) {
			fprintf(stderr, "dialtest: no phone book entry '%s'\n", names[i]);
			free(v);
			return NULL;
		}
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", 1, NULL, 'c'}, {"dir", 1, NULL, 'd'},  {"lock-dir", 1, NULL, 'l'},
	    {"window", 1, NULL, 'w'}, {"hold", 1, NULL, 'H'}, {"check-port", 1, NULL, 'p'},
	    {"help", 0, NULL, 'h'},   {NULL, 0, NULL, 0}};
	const char *config = NULL, *dir = NULL, *lock_dir = NULL;
	int window = 0, hold = 0, c, rc;
	struct dialtest t = {0};
	struct config cfg;
	struct buf err = BUF_INIT;
	const struct phonebook_entry **entries;
	size_t n;
	struct link *l = NULL;
	struct link_report rep;
	struct link_opts lo = {0};

	log_init("dialtest", 1, 0);
	modules_register();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'l':
			lock_dir = optarg;
			break;
		case 'w':
			window = atoi(optarg);
			break;
		case 'H':
			hold = atoi(optarg);
			break;
		case 'p':
			t.check_port = atoi(optarg);
			break;
		default:
			fputs(dialtest_usage, c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 64;
		}
	}
	if (!config || !dir) {
		fputs(dialtest_usage, stderr);
		return 64;
	}
	if (config_load(&cfg, config, &err) < 0) {
		fprintf(stderr, "%s", buf_cstr(&err));
		return 78;
	}
	if (event_open(dir, cfg.diag, 0) < 0)
		return 73;
	entries = dialtest_entries(&cfg, argv + optind, argc - optind, &n);
	if (entries == NULL)
		return 64;
	lo.lock_dir = lock_dir ? lock_dir : cfg.lock_dir;
	lo.deadline_usec = window ? clock_usec() + (int64_t)window * 1000000 : 0;
	lo.dtr_hold_ms = 100;
	lo.progress = dialtest_progress;
	lo.check = dialtest_check;
	lo.arg = &t;
	rc = link_up(entries, n, &lo, &l, &rep);
	if (rc == 0) {
		printf("result: up entry=%s number=%s speed=%d connect=%s\n", link_entry(l)->name,
		       link_number(l), link_speed(l), link_connect_text(l));
		if (hold > 0)
			usleep((useconds_t)hold * 1000);
		link_down(l, "dialtest done");
	} else {
		struct buf sum = BUF_INIT;
		link_report_summary(&rep, &sum);
		printf("result: failed %s\n", buf_cstr(&sum));
		buf_free(&sum);
	}
	printf("attempts: %zu recoveries: %d recovered: %d\n", rep.n, rep.recoveries,
	       rep.recoveries_ok);
	for (size_t i = 0; i < rep.n; i++)
		printf("attempt: %s %s %d/%d %s\n", rep.v[i].entry,
		       rep.v[i].number[0] ? rep.v[i].number : "-", rep.v[i].n, rep.v[i].of,
		       cause_name(rep.v[i].cause.id));
	link_report_free(&rep);
	event_close();
	dialtest_print_events(dir);
	free(entries);
	config_free(&cfg);
	buf_free(&err);
	return rc == 0 ? 0 : 1;
}
