# Hostile load (issue 11, item 7): a thousand idle connections from a
# hundred addresses, clients trickling a command or message data a byte at a
# time, and, at the same time, one legitimate client sending 100 messages.
# The legitimate client is served (every message accepted), the daemon's
# memory stays small, and the idle and slow connections are cut by the
# deadlines (smtp_timeout from a command's first byte, smtp_min_data_rate
# during DATA), each with a 421 on the wire. Bounded: every connection and
# loop has a count, every wait a time limit.
import resource
import socket
import time

from procinfo import rss_kb, sanitized
from smtpraw import SmtpRaw, message, queued_id
from wait import wait_until

IDLE = 1000
IDLE_ADDRS = 100  # 127.0.1.1 .. 127.0.1.100, 10 connections each
CONF = ("hostname = mx.test.example", "local_domains = example.org",
        "local_recipients = alice", "mynetworks = 127.0.0.1/32",
        "max_connections = 1500", "max_connections_per_client = 10",
        "smtp_timeout = 6s", "smtp_min_data_rate = 200")


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need


def open_idle(port):
    """IDLE connections that never send a byte (banners left unread)."""
    socks = []
    for i in range(IDLE):
        src = "127.0.1.%d" % (i % IDLE_ADDRS + 1)
        s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                     source_address=(src, 0))
        socks.append(s)
    return socks


def cut_with_421(sock, timeout):
    """Reads what the server sends until EOF: (saw a 421 line, closed)."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.2) + 2):
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            chunk = None
        except OSError:
            return b"\r\n421 " in b"\r\n" + data, True
        if chunk == b"":
            return b"\r\n421 " in b"\r\n" + data, True
        if chunk:
            data += chunk
        if time.monotonic() > deadline:
            break
    return b"\r\n421 " in b"\r\n" + data, False


class Trickler:
    """A slowloris client: sends one byte of what it has each step."""

    def __init__(self, port, src, data_phase):
        self.c = SmtpRaw(port, timeout=5, source=src)
        self.rest = b"EHLO slow.example.net\r\n"
        if data_phase:
            assert self.c.cmd("EHLO slow.example.net").code == 250
            assert self.c.cmd("MAIL FROM:<s@slow.example.net>").code == 250
            assert self.c.cmd("RCPT TO:<alice@example.org>").code == 250
            assert self.c.cmd("DATA").code == 354
            self.rest = b"Subject: slow\r\n\r\n" + b"x" * 70 + b"\r\n" * 100
        self.dead = False

    def step(self):
        if self.dead or not self.rest:
            return
        try:
            self.c.send(self.rest[:1])
            self.rest = self.rest[1:]
        except OSError:
            self.dead = True


def test_legitimate_client_served_under_idle_flood_and_slowloris(daemon):
    if not raise_nofile(IDLE + 200):
        import pytest
        pytest.skip("cannot raise RLIMIT_NOFILE to %d" % (IDLE + 200))
    d = daemon(*CONF)
    rss0 = rss_kb(d.pid)
    idle = open_idle(d.port)
    slow = [Trickler(d.port, "127.0.2.%d" % (i + 1), data_phase=i >= 3) for i in range(6)]
    t_load = time.monotonic()
    try:
        # The legitimate client, while all that is open: 100 messages over
        # 10 sessions, every one accepted.
        accepted = 0
        for n in range(10):
            for t in slow:
                t.step()
            with SmtpRaw(d.port, timeout=20) as c:
                assert c.banner.code == 220, c.banner
                assert c.cmd("EHLO good.example.net").code == 250
                for k in range(10):
                    assert c.cmd("MAIL FROM:<good@good.example.net>").code == 250
                    assert c.cmd("RCPT TO:<alice@example.org>").code == 250
                    assert c.cmd("DATA").code == 354
                    r = c.cmd(message("load %d-%d" % (n, k)).decode() + ".")
                    assert r.code == 250, r
                    queued_id(r)
                    accepted += 1
                assert c.cmd("QUIT").code == 221
        assert accepted == 100
        if not sanitized(d.pid):
            grown = rss_kb(d.pid) - rss0
            assert grown < 48 * 1024, "RSS grew by %d KB with %d connections" % (grown, IDLE)

        # Keep the slow ones trickling (a byte a second each) until the
        # deadlines cut them: a command within smtp_timeout (6 s) of its
        # first byte; DATA below 200 octets/s over a 10-second window.
        for _ in range(30):
            for t in slow:
                t.step()
            if all(t.dead for t in slow):
                break
            time.sleep(1.0)
        for t in slow:
            saw_421, closed = cut_with_421(t.c.sock, 15)
            assert saw_421 and closed, "slow client not cut"

        # The idle ones: 421 and closed once smtp_timeout passed.
        deadline = t_load + 6.0 + 15.0
        results = [cut_with_421(s, max(0.2, deadline - time.monotonic())) for s in idle]
        assert all(r == (True, True) for r in results), \
            "%d idle connections not cut" % sum(r != (True, True) for r in results)
    finally:
        for s in idle:
            s.close()
        for t in slow:
            t.c.close()
    assert len(d.queue_ids()) + len(d.maildir_files("alice")) >= 100
    assert wait_until(lambda: d.events_with(2012), 5)
