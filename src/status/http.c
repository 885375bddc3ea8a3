/* The HTTP listener (http.h): one evhttp on the loop, a table of paths.
 * Pages are built whole in a buffer, then sent: they are small (the status
 * page of a week stays under 50 KB). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "status/history.h"
#include "status/http.h"
#include "status/metrics.h"
#include "status/queue_summary.h"
#include "status/statuspage.h"
#include "dialup/session.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/xmalloc.h"
#include "mail/config.h"
#include "queue/queue.h"

struct http {
	struct http_ctx ctx;
	struct evhttp *http;
	char *unix_path; /* unix:PATH listening socket, removed at the end */
};

/* Fills what only the daemon knows, read now. */
static void http_metrics_page(struct http *h, struct evhttp_request *req, struct buf *out)
{
	struct session_snapshot snap;
	struct queue_summary qs;
	struct metrics_view v = {.queue = &qs, .now = clock_now()};

	if (h->ctx.sessions) {
		sessions_snapshot(h->ctx.sessions, &snap);
		v.sess = &snap;
	}
	queue_summary_take(h->ctx.queue, h->ctx.cfg, &qs);
	v.disk_known = fs_free_bytes(queue_dir(h->ctx.queue), &v.disk_free) == 0;
	v.disk_min_free = h->ctx.cfg->min_free_space;
	metrics_render(h->ctx.metrics, &v, out);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
}

/* The value of ?range= ("24h" when absent); NULL if it is not one of ours. */
static const char *http_range(struct evhttp_request *req, char *out, size_t len)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq q;
	const char *v;

	snprintf(out, len, "24h");
	if (query == NULL || evhttp_parse_query_str(query, &q) < 0)
		return out;
	v = evhttp_find_header(&q, "range");
	if (v)
		snprintf(out, len, "%s", v);
	evhttp_clear_headers(&q);
	return statuspage_range(out) ? out : NULL;
}

/* GET /: the live state, then the period's pictures. */
static void http_status_page(struct http *h, struct evhttp_request *req, struct buf *out)
{
	struct session_snapshot snap;
	struct queue_summary qs;
	struct history hist;
	char range[16], host[256] = "";
	struct status_view v = {.title = "status", .queue = &qs, .hist = &hist, .now = clock_now()};

	v.range = http_range(req, range, sizeof(range));
	v.range = v.range ? v.range : "24h";
	if (h->ctx.sessions) {
		sessions_snapshot(h->ctx.sessions, &snap);
		v.sess = &snap;
	}
	if (h->ctx.cfg->hostname[0] == '\0' && gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "?");
	v.host = h->ctx.cfg->hostname[0] ? h->ctx.cfg->hostname : host;
	queue_summary_take(h->ctx.queue, h->ctx.cfg, &qs);
	history_load(&hist, h->ctx.dir, v.now - statuspage_range(v.range), v.now);
	statuspage_render(out, &v);
	history_free(&hist);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/html; charset=utf-8");
}

static const struct {
	const char *path;
	void (*page)(struct http *h, struct evhttp_request *req, struct buf *out);
} http_pages[] = {
    {"/metrics", http_metrics_page},
    {"/", http_status_page},
};

static void http_send(struct evhttp_request *req, int code, const char *reason,
		      const struct buf *body)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *hd = evhttp_request_get_output_headers(req);

	if (evhttp_find_header(hd, "Content-Type") == NULL)
		evhttp_add_header(hd, "Content-Type", "text/plain; charset=utf-8");
	evhttp_add_header(hd, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(b, body->data ? body->data : "", body->len);
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void http_on_request(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct buf out = BUF_INIT;

	if (!(evhttp_request_get_command(req) & (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD))) {
		buf_puts(&out, "read-only: GET or HEAD\n");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		http_send(req, 405, "Method Not Allowed", &out);
		buf_free(&out);
		return;
	}
	for (size_t i = 0; i < sizeof(http_pages) / sizeof(http_pages[0]); i++)
		if (path && strcmp(path, http_pages[i].path) == 0) {
			http_pages[i].page(h, req, &out);
			http_send(req, 200, "OK", &out);
			buf_free(&out);
			return;
		}
	buf_puts(&out, "not found\n");
	http_send(req, 404, "Not Found", &out);
	buf_free(&out);
}

/* "host:port" or "[v6]:port" into host (brackets removed) and port. */
static char *http_split(const char *addr, int *port)
{
	const char *colon = strrchr(addr, ':');
	char *host;

	*port = atoi(colon + 1);
	if (addr[0] == '[')
		host = xasprintf("%.*s", (int)(colon - addr - 2), addr + 1);
	else
		host = xasprintf("%.*s", (int)(colon - addr), addr);
	return host;
}

/* unix:PATH, mode 0660: its owner and group only (a reverse proxy that
 * adds TLS and authentication joins the group). */
static int http_bind_unix(struct http *h, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct evconnlistener *l;
	mode_t old;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	old = umask(0117);
	l = evconnlistener_new_bind(h->ctx.base, NULL, NULL,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
				    (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (l == NULL || evhttp_bind_listener(h->http, l) == NULL) {
		if (l)
			evconnlistener_free(l);
		return -1;
	}
	h->unix_path = xstrdup(path);
	return 0;
}

/* host:port ([v6]:port) or unix:PATH. */
static int http_bind(struct http *h, const char *addr)
{
	int port, rc;
	char *host;

	if (strncmp(addr, "unix:", 5) == 0)
		return http_bind_unix(h, addr + 5);
	host = http_split(addr, &port);
	rc = evhttp_bind_socket(h->http, host, (ev_uint16_t)port);
	free(host);
	return rc;
}

struct http *http_start(const struct http_ctx *ctx, struct buf *why)
{
	struct http *h = xcalloc(1, sizeof(*h));

	h->ctx = *ctx;
	h->http = evhttp_new(ctx->base);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
						EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_timeout(h->http, 30);
	evhttp_set_max_headers_size(h->http, 8192);
	evhttp_set_max_body_size(h->http, 0);
	evhttp_set_gencb(h->http, http_on_request, h);
	if (http_bind(h, ctx->cfg->http_listen) < 0) {
		buf_printf(why, "cannot listen on %s: %m", ctx->cfg->http_listen);
		http_free(h);
		return NULL;
	}
	return h;
}

void http_free(struct http *h)
{
	if (h == NULL)
		return;
	if (h->http)
		evhttp_free(h->http);
	if (h->unix_path)
		unlink(h->unix_path);
	free(h->unix_path);
	free(h);
}
