"""MX routing: the daemon finds a domain's mail servers in DNS (c-ares) and
tries them in preference order. The test runs its own DNS server (dnsmasq on
a loopback port, answering only from its command line: --no-resolv
--no-hosts) and points dialmail at it with dns_servers; the MX hosts are
recording SMTP servers on 127.0.0.2 and 127.0.0.3, on one port.
"""
import socket

import pytest

from dnsmasq import ZONE
from ports import free_port
from smtp_recorder import Recorder
from smtpraw import send_message
from wait import wait_until


class HostRecorder(Recorder):
    """A recorder bound to a given loopback address."""

    def __init__(self, host, **kw):
        super().__init__(**kw)
        self.host = host


def free_port_on(hosts):
    """A port free on every host of hosts."""
    for _ in range(50):
        port = free_port()
        try:
            for h in hosts:
                with socket.socket() as s:
                    s.bind((h, port))
            return port
        except OSError:
            continue
    raise AssertionError("no common free port")


@pytest.fixture
def recorders():
    started = []

    def make(host, port, **kw):
        rec = HostRecorder(host, **kw)
        rec.start(port)
        started.append(rec)
        return rec

    yield make
    for rec in started:
        rec.stop()


def two_mx(domain):
    return ["--mx-host=%s,mx1.%s,10" % (domain, domain), "--mx-host=%s,mx2.%s,20" % (domain, domain),
            "--host-record=mx1.%s,127.0.0.2" % domain, "--host-record=mx2.%s,127.0.0.3" % domain]


def mx_daemon(daemon, dnsd, port, *extra):
    return daemon("local_recipients = alice", "queue_run_interval = 1h",
                  "dns_servers = 127.0.0.1:%d" % dnsd.port, *extra,
                  "[routes]", "* = mx port=%d tls=none" % port)


def queued(dm):
    return {r["addr"]: r for e in dm.queue() for r in e["recipients"]}


def test_preference_order_first_mx_gets_the_mail(daemon, dns, recorders):
    domain = "pref.%s" % ZONE
    d = dns(*two_mx(domain))
    port = free_port_on(["127.0.0.2", "127.0.0.3"])
    mx1 = recorders("127.0.0.2", port)
    mx2 = recorders("127.0.0.3", port)
    dm = mx_daemon(daemon, d, port)
    for i in range(3):
        r = send_message(dm.port, "alice@localhost", ["bob@%s" % domain],
                         b"Subject: mx %d\r\n\r\nbody\r\n" % i)
        assert r.code == 250
    assert wait_until(lambda: dm.queue_ids() == [], 10), (dm.queue(), dm.events())
    assert sum(len(s.messages) for s in mx1.sessions) == 3
    assert mx2.sessions == []
    assert "query[MX] %s" % domain in d.queries()
    ev = dm.events_with(3001)
    assert ev and all(e["remote_mta"] == "mx1.%s" % domain for e in ev)


def test_first_mx_refuses_at_greeting_second_gets_it(daemon, dns, recorders):
    domain = "busy.%s" % ZONE
    d = dns(*two_mx(domain))
    port = free_port_on(["127.0.0.2", "127.0.0.3"])
    mx1 = recorders("127.0.0.2", port, banner="421 4.3.2 mx1 too busy")
    mx2 = recorders("127.0.0.3", port)
    dm = mx_daemon(daemon, d, port)
    r = send_message(dm.port, "alice@localhost", ["bob@%s" % domain],
                     b"Subject: fallback\r\n\r\nbody\r\n")
    assert r.code == 250
    assert wait_until(lambda: dm.queue_ids() == [], 10), (dm.queue(), dm.events())
    assert len(mx1.sessions) == 1 and mx1.sessions[0].messages == []
    assert b"MAIL FROM" not in mx1.sessions[0].client_bytes()
    assert [m.rcpts for s in mx2.sessions for m in s.messages] == [["bob@%s" % domain]]
    ev = dm.events_with(3010)
    assert ev and ev[0]["cause"] == "greeting-refused" and "127.0.0.2" in ev[0]["address"]


def test_first_mx_connection_refused_second_gets_it(daemon, dns, recorders):
    domain = "down.%s" % ZONE
    d = dns(*two_mx(domain))
    port = free_port_on(["127.0.0.2", "127.0.0.3"])
    mx2 = recorders("127.0.0.3", port)  # nothing listens on 127.0.0.2
    dm = mx_daemon(daemon, d, port)
    r = send_message(dm.port, "alice@localhost", ["bob@%s" % domain],
                     b"Subject: refused\r\n\r\nbody\r\n")
    assert r.code == 250
    assert wait_until(lambda: dm.queue_ids() == [], 10), (dm.queue(), dm.events())
    assert len([m for s in mx2.sessions for m in s.messages]) == 1
    ev = dm.events_with(3011)
    assert ev and "127.0.0.2" in ev[0]["address"]


def test_whole_transaction_4xx_falls_back_5xx_does_not(daemon, dns, recorders):
    domain = "tx.%s" % ZONE
    d = dns(*two_mx(domain))
    port = free_port_on(["127.0.0.2", "127.0.0.3"])
    mx1 = recorders("127.0.0.2", port,
                    rcpt_replies={"temp@%s" % domain: "451 4.3.0 mx1 cannot take it now",
                                  "perm@%s" % domain: "550 5.1.1 no such user"})
    mx2 = recorders("127.0.0.3", port)
    dm = mx_daemon(daemon, d, port)
    for n, who in enumerate(("temp", "perm"), 1):
        r = send_message(dm.port, "alice@localhost", ["%s@%s" % (who, domain)],
                         b"Subject: %s\r\n\r\nbody\r\n" % who.encode())
        assert r.code == 250
        assert wait_until(lambda: len(dm.events_with(2001)) >= n, 10), dm.events()
    assert wait_until(lambda: dm.maildir_files("alice"), 10), dm.events()
    got2 = [m.rcpts for s in mx2.sessions for m in s.messages]
    assert got2 == [["temp@%s" % domain]]  # 4xx at mx1: mx2 took it
    assert dm.queue_ids() == []  # perm bounced (DSN delivered locally), temp delivered
    assert dm.events_with(3003)[0]["rcpt"] == "perm@%s" % domain
    assert [m.rcpts for s in mx1.sessions for m in s.messages] == []  # 5xx: not retried at mx2
    assert not any("perm@" in str(m.rcpts) for s in mx2.sessions for m in s.messages)


def test_no_mx_uses_the_domains_address(daemon, dns, recorders):
    domain = "plain.%s" % ZONE
    d = dns("--host-record=%s,127.0.0.3" % domain)
    port = free_port_on(["127.0.0.3"])
    rec = recorders("127.0.0.3", port)
    dm = mx_daemon(daemon, d, port)
    r = send_message(dm.port, "alice@localhost", ["bob@%s" % domain], b"Subject: a\r\n\r\nb\r\n")
    assert r.code == 250
    assert wait_until(lambda: dm.queue_ids() == [], 10), (dm.queue(), dm.events())
    assert len([m for s in rec.sessions for m in s.messages]) == 1


def test_nxdomain_bounces_and_dns_failure_defers(daemon, dns, recorders, tmp_path):
    d = dns()
    port = free_port()
    dm = mx_daemon(daemon, d, port)
    r = send_message(dm.port, "alice@localhost", ["bob@nope.%s" % ZONE], b"Subject: a\r\n\r\nb\r\n")
    assert r.code == 250
    assert wait_until(lambda: dm.maildir_files("alice"), 10), dm.events()
    assert "5.1.2" in dm.events_with(3003)[0]["reply"]
    # a DNS server that does not answer: deferred with event 2006
    d.stop()
    r = send_message(dm.port, "alice@localhost", ["bob@other.%s" % ZONE], b"Subject: a\r\n\r\nb\r\n")
    assert r.code == 250
    ev = dm.wait_event(2006, timeout=15)
    assert ev and "other.%s" % ZONE in ev[0]["text"]
    assert queued(dm)["bob@other.%s" % ZONE]["state"] == "pending"
