# Deadlines and per-client limits of the SMTP server (issue 11, items 3 and
# 4): a command must be complete within smtp_timeout of its first byte, a
# DATA trickle is cut by smtp_min_data_rate, a session by
# smtp_max_session_time; one client address cannot hold more than
# max_connections_per_client sessions, open more than
# max_connection_rate_per_client a minute, or send more than
# max_messages_per_client messages a minute. 127.0.0.2 and 127.0.0.3 are
# other clients than 127.0.0.1 (the client socket is bound to them).
import socket
import time

from odmr import hub as odmr_hub
from smtpraw import SmtpRaw, message
from wait import wait_until

LOCAL = ("hostname = mx.test.example", "local_domains = example.org",
         "local_recipients = alice")
OUTSIDE = "mynetworks = 127.0.0.1/32"


def read_reply_while(c, step, timeout):
    """Calls step() every 0.5 s until a reply arrives (or timeout): the reply
    and the time it took."""
    t0 = time.monotonic()
    for _ in range(int(timeout / 0.5) + 2):
        if time.monotonic() - t0 > timeout:
            break
        try:
            step()
        except OSError:
            pass
        try:
            return c.reply(timeout=0.5), time.monotonic() - t0
        except socket.timeout:
            continue
        except EOFError:
            return None, time.monotonic() - t0
    raise AssertionError("no reply within %.1f s" % timeout)


def timeout_events(d, reason):
    return d.wait_event(2012, pred=lambda e: e.get("reason") == reason)


def test_command_deadline_counts_from_the_first_byte(daemon):
    d = daemon(*LOCAL, "smtp_timeout = 3s")
    with d.smtp() as c:
        # Complete commands keep a session alive past smtp_timeout...
        for _ in range(5):
            time.sleep(0.9)
            assert c.cmd("NOOP").code == 250
        # ...but a command trickled a byte at a time is cut 3 s after its
        # first byte, however often bytes come.
        c.send(b"N")
        r, took = read_reply_while(c, lambda: c.send(b"O"), timeout=10)
        assert r is not None and r.code == 421 and r.lines[0].startswith("4.4.2"), r
        assert 2.5 <= took <= 5.0, took
        assert c.closed(3.0)
    ev = timeout_events(d, "command")
    assert ev and ev[0]["client"] == "127.0.0.1", ev


def test_data_trickle_is_cut_by_min_data_rate(daemon):
    d = daemon(*LOCAL, "smtp_timeout = 60s", "smtp_data_timeout = 60s",
               "smtp_min_data_rate = 200")
    # A brisk client is not affected.
    r = d.send("a@client.test", ["alice@example.org"], message(body="\r\n".join(["x" * 70] * 70)))
    assert r.code == 250, r
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: trickle\r\n\r\n")
        # 20 octets a second against 200 required: cut at the end of the
        # first 10-second window, well before smtp_data_timeout.
        r, took = read_reply_while(c, lambda: c.send(b"0123456789"), timeout=20)
        assert r is not None and r.code == 421, r
        assert 8.5 <= took <= 14, took
        assert c.closed(3.0)
    ev = timeout_events(d, "data-rate")
    assert ev and ev[0]["client"] == "127.0.0.1", ev
    # Only the brisk message arrived.
    assert wait_until(lambda: len(d.maildir_files("alice")) == 1, 10)
    time.sleep(0.5)
    assert len(d.maildir_files("alice")) == 1 and d.queue() == []


def test_max_session_time_cuts_a_busy_session(daemon):
    d = daemon(*LOCAL, "smtp_timeout = 60s", "smtp_max_session_time = 3s")
    with d.smtp() as c:
        t0 = time.monotonic()
        assert c.cmd("EHLO client.test").code == 250
        replies = []
        for _ in range(30):  # a NOOP every 0.3 s: never idle, still cut
            time.sleep(0.3)
            r = c.cmd("NOOP", timeout=5)
            replies.append(r.code)
            if r.code != 250:
                break
        took = time.monotonic() - t0
        assert r.code == 421 and r.lines[0].startswith("4.4.2"), replies
        assert 2.5 <= took <= 5.0, took
        assert c.closed(3.0)
    assert timeout_events(d, "session-time")


def test_concurrent_limit_per_client(daemon):
    d = daemon(*LOCAL, OUTSIDE, "max_connections_per_client = 3")
    held = [SmtpRaw(d.port, source="127.0.0.2") for _ in range(3)]
    try:
        assert all(c.banner.code == 220 for c in held)
        for _ in range(3):  # refused, and only one event for them
            with SmtpRaw(d.port, source="127.0.0.2", banner=False) as c:
                r = c.reply()
                assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
                assert "too many connections" in r.text
                assert c.closed(3.0)
        # Another client is served meanwhile, and mynetworks is exempt.
        with SmtpRaw(d.port, source="127.0.0.3") as c:
            assert c.banner.code == 220
            assert c.cmd("EHLO other.test").code == 250
        mine = [SmtpRaw(d.port) for _ in range(5)]
        assert all(c.banner.code == 220 for c in mine)
        for c in mine:
            c.close()
        # One of the three leaves: the client may connect again.
        held.pop().cmd("QUIT")

        def again():
            with SmtpRaw(d.port, source="127.0.0.2") as c:
                return c.banner.code == 220
        assert wait_until(again, 5)
    finally:
        for c in held:
            c.close()
    ev = d.wait_event(2016)
    assert len(ev) == 1, ev
    assert ev[0]["client"] == "127.0.0.2" and ev[0]["limit"] == "connections", ev


def test_connection_rate_per_client(daemon):
    d = daemon(*LOCAL, OUTSIDE, "max_connections_per_client = 0",
               "max_connection_rate_per_client = 3")
    for _ in range(3):
        with SmtpRaw(d.port, source="127.0.0.2") as c:
            assert c.banner.code == 220
            assert c.cmd("QUIT").code == 221
    with SmtpRaw(d.port, source="127.0.0.2", banner=False) as c:
        r = c.reply()
        assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
        assert "per minute" in r.text
    with SmtpRaw(d.port, source="127.0.0.3") as c:
        assert c.banner.code == 220
    ev = d.wait_event(2016)
    assert ev and ev[0]["limit"] == "connection-rate", ev


def test_messages_per_client(daemon):
    d = daemon(*LOCAL, OUTSIDE, "max_messages_per_client = 2")
    with SmtpRaw(d.port, source="127.0.0.2") as c:
        assert c.cmd("EHLO client.test").code == 250
        for i in range(2):
            assert c.cmd("MAIL FROM:<a@client.test>").code == 250
            assert c.cmd("RCPT TO:<alice@example.org>").code == 250
            assert c.cmd("DATA").code == 354
            assert c.cmd(message(subject="m%d" % i) + b".").code == 250
        r = c.cmd("MAIL FROM:<a@client.test>")
        assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
        assert "too many messages" in r.text
        assert c.closed(3.0)
    # Another client still sends.
    with SmtpRaw(d.port, source="127.0.0.3") as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
    ev = d.wait_event(2016)
    assert ev and ev[0]["limit"] == "messages" and ev[0]["client"] == "127.0.0.2", ev


def test_mynetworks_exemption_can_be_turned_off(daemon):
    d = daemon(*LOCAL, "max_connections_per_client = 2")
    mine = [SmtpRaw(d.port) for _ in range(4)]  # 127.0.0.0/8 is mynetworks
    assert all(c.banner.code == 220 for c in mine)
    for c in mine:
        c.close()
    d2 = daemon(*LOCAL, "max_connections_per_client = 2",
                "client_limits_exempt_mynetworks = no")
    held = [SmtpRaw(d2.port) for _ in range(2)]
    try:
        assert all(c.banner.code == 220 for c in held)
        with SmtpRaw(d2.port, banner=False) as c:
            r = c.reply()
            assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
    finally:
        for c in held:
            c.close()


def test_odmr_port_is_exempt_from_max_session_time(daemon, tmp_path):
    d = odmr_hub(daemon, tmp_path, "smtp_timeout = 60s", "smtp_max_session_time = 2s")
    with SmtpRaw(d.odmr_port) as branch, SmtpRaw(d.port) as lan:
        t0 = time.monotonic()
        assert branch.cmd("EHLO branch.example").code == 250
        assert lan.cmd("EHLO lan.example").code == 250
        cut = None
        for _ in range(16):  # 4 s of NOOPs on both
            time.sleep(0.25)
            assert branch.cmd("NOOP").code == 250  # the ODMR port: a branch on a modem line
            if cut is None:
                r = lan.cmd("NOOP", timeout=5)
                if r.code != 250:
                    assert r.code == 421 and r.lines[0].startswith("4.4.2"), r
                    cut = time.monotonic() - t0
        assert cut is not None and 1.5 <= cut <= 3.5, cut
        assert time.monotonic() - t0 >= 4
        assert branch.cmd("NOOP").code == 250
