/* The port family (link/port.h) through its TCP back-end against a local
 * listener: bytes both ways, drain, hang-up as close-and-reconnect, end of
 * file as a lost carrier, refused and malformed devices, the serial row for
 * paths, and the AT dialogue of modem.c running unchanged over TCP (with
 * the speed a CONNECT line gives). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/clock.h"
#include "link/modem.h"
#include "link/port.h"

/* A listener on 127.0.0.1 and an ephemeral port; device gets "tcp:...". */
static int listener(char *device, size_t len)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t slen = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	snprintf(device, len, "tcp:127.0.0.1:%d", ntohs(sin.sin_port));
	return fd;
}

static void open_tcp(struct port *p, const char *device)
{
	struct port_spec spec = {device, 115200, 1, NULL};
	struct cause c = {0};

	assert_int_equal(port_open(p, &spec, &c), 0);
	assert_true(p->fd >= 0);
	assert_string_equal(p->ops->name, "tcp");
}

static void test_bytes_both_ways(void **state)
{
	char device[64], got[64];
	int lfd = listener(device, sizeof(device)), peer;
	struct port p;
	struct cause c = {0};
	ssize_t n;

	open_tcp(&p, device);
	peer = accept(lfd, NULL, NULL);
	assert_true(peer >= 0);
	assert_int_equal(port_write(&p, "AT\r", 3, 1000, &c), 0);
	n = read(peer, got, sizeof(got));
	assert_int_equal(n, 3);
	assert_memory_equal(got, "AT\r", 3);
	assert_int_equal(write(peer, "\r\nOK\r\n", 6), 6);
	n = port_read(&p, got, sizeof(got), 1000, &c);
	assert_int_equal(n, 6);
	assert_memory_equal(got, "\r\nOK\r\n", 6);
	/* nothing more: a read times out with 0 */
	assert_int_equal(port_read(&p, got, sizeof(got), 50, &c), 0);
	port_close(&p);
	assert_int_equal(read(peer, got, sizeof(got)), 0); /* the terminal sees the close */
	assert_null(p.ops);
	assert_int_equal(p.fd, -1);
	close(peer);
	close(lfd);
}

static void test_drain_discards_stale_input(void **state)
{
	char device[64], got[64];
	int lfd = listener(device, sizeof(device)), peer;
	struct port p;
	struct cause c = {0};

	open_tcp(&p, device);
	peer = accept(lfd, NULL, NULL);
	assert_int_equal(write(peer, "RING\r\n", 6), 6);
	assert_int_equal(port_read(&p, got, 1, 1000, &c), 1); /* it has arrived */
	port_drain(&p);
	assert_int_equal(port_read(&p, got, sizeof(got), 50, &c), 0);
	port_close(&p);
	close(peer);
	close(lfd);
}

static void test_hangup_reconnects(void **state)
{
	char device[64], got[8];
	int lfd = listener(device, sizeof(device)), first, second;
	struct port p;
	struct cause c = {0};

	open_tcp(&p, device);
	first = accept(lfd, NULL, NULL);
	assert_int_equal(port_hangup(&p, 10, &c), 0);
	assert_int_equal(read(first, got, sizeof(got)), 0); /* the old call ended */
	second = accept(lfd, NULL, NULL);
	assert_true(second >= 0);
	assert_int_equal(port_write(&p, "ATZ\r", 4, 1000, &c), 0);
	assert_int_equal(read(second, got, sizeof(got)), 4);
	port_close(&p);
	close(first);
	close(second);
	close(lfd);
}

static void test_eof_is_carrier_lost(void **state)
{
	char device[64], got[8];
	int lfd = listener(device, sizeof(device)), peer;
	struct port p;
	struct cause c = {0};

	open_tcp(&p, device);
	peer = accept(lfd, NULL, NULL);
	close(peer);
	assert_int_equal(port_read(&p, got, sizeof(got), 1000, &c), -1);
	assert_int_equal(c.id, CAUSE_CARRIER_LOST);
	port_close(&p);
	close(lfd);
}

static void test_refused_malformed_and_paths(void **state)
{
	char device[64];
	int lfd = listener(device, sizeof(device));
	struct port p;
	struct cause c = {0};
	struct port_spec spec = {device, 115200, 1, NULL};

	close(lfd); /* nobody listens there now */
	assert_int_equal(port_open(&p, &spec, &c), -1);
	assert_int_equal(c.id, CAUSE_DEVICE_GONE);
	assert_non_null(strstr(c.words, device));
	assert_null(p.ops);
	assert_int_equal(p.fd, -1);

	spec.device = "tcp:no-port-here";
	assert_int_equal(port_open(&p, &spec, &c), -1);
	assert_int_equal(c.id, CAUSE_DEVICE_MISSING);
	assert_non_null(strstr(c.words, "not tcp:HOST:PORT"));

	spec.device = "/nonexistent/ttyS9"; /* a path: the serial row */
	assert_int_equal(port_open(&p, &spec, &c), -1);
	assert_int_equal(c.id, CAUSE_DEVICE_MISSING);
	assert_non_null(strstr(c.words, "/nonexistent/ttyS9"));
	port_close(&p); /* safe on a closed port */
}

/* A terminal that answers OK to every AT command line until its caller
 * closes the connection. */
static void *fake_terminal(void *arg)
{
	int peer = accept(*(int *)arg, NULL, NULL);
	char ch;

	while (peer >= 0 && read(peer, &ch, 1) == 1)
		if (ch == '\r' && write(peer, "\r\nOK\r\n", 6) != 6)
			break;
	if (peer >= 0)
		close(peer);
	return NULL;
}

static void test_modem_dialogue_over_tcp(void **state)
{
	char device[64];
	int lfd = listener(device, sizeof(device));
	char *init[] = {"ATZ", "AT&F E0 V1"};
	struct phonebook_entry e = {.name = "sat", .device = device, .speed = 115200};
	struct modem m;
	struct cause c = {0};
	pthread_t t;

	e.init.v = init;
	e.init.n = 2;
	e.at_timeout_ms = 2000;
	assert_int_equal(pthread_create(&t, NULL, fake_terminal, &lfd), 0);
	assert_int_equal(modem_open(&m, &e, NULL, &c), 0);
	assert_int_equal(modem_init(&m, &c), 0);
	modem_close(&m);
	assert_int_equal(m.port.fd, -1);
	pthread_join(t, NULL);
	close(lfd);
}

/* A terminal that answers every command line with reply (arg: lfd, reply). */
struct scripted {
	int lfd;
	const char *reply;
};

static void *scripted_terminal(void *arg)
{
	struct scripted *sc = arg;
	int peer = accept(sc->lfd, NULL, NULL);
	char ch;

	while (peer >= 0 && read(peer, &ch, 1) == 1)
		if (ch == '\r' && write(peer, sc->reply, strlen(sc->reply)) < 0)
			break;
	if (peer >= 0)
		close(peer);
	return NULL;
}

/* The speed of a call is what CONNECT says, or 0 (unknown): a number beyond
 * an int (line noise; found by tests/fuzz/fuzz_modem.c) was once taken by
 * atoi and became a negative speed in the link-up event. */
static void dial_speed(const char *reply, const char *connect, int speed)
{
	char device[64];
	struct scripted sc = {listener(device, sizeof(device)), reply};
	struct phonebook_entry e = {.name = "isp", .device = device, .dial_prefix = "ATDT"};
	struct modem m;
	struct cause c = {0};
	pthread_t t;

	e.dial_timeout_ms = 2000;
	assert_int_equal(pthread_create(&t, NULL, scripted_terminal, &sc), 0);
	assert_int_equal(modem_open(&m, &e, NULL, &c), 0);
	assert_int_equal(modem_dial(&m, "5551234", &c), 0);
	assert_string_equal(m.connect, connect);
	assert_int_equal(m.speed, speed);
	modem_close(&m);
	pthread_join(t, NULL);
	close(sc.lfd);
}

static void test_modem_connect_speed(void **state)
{
	dial_speed("\r\nCONNECT 33600/ARQ\r\n", "CONNECT 33600/ARQ", 33600);
	dial_speed("\r\nCONNECT 3000000000\r\n", "CONNECT 3000000000", 0);
	dial_speed("\r\nCONNECT 128800000000000000000000\r\n", "CONNECT 128800000000000000000000",
		   0);
	dial_speed("\r\nCONNECT\r\n", "CONNECT", 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bytes_both_ways),
	    cmocka_unit_test(test_drain_discards_stale_input),
	    cmocka_unit_test(test_hangup_reconnects),
	    cmocka_unit_test(test_eof_is_carrier_lost),
	    cmocka_unit_test(test_refused_malformed_and_paths),
	    cmocka_unit_test(test_modem_dialogue_over_tcp),
	    cmocka_unit_test(test_modem_connect_speed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
