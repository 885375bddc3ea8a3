# Per-listener options (issue 10 item 6, issue 11 item 3): each listen item
# may name a service (smtp, submission, submissions) and override the
# deadlines and per-client limits with -o name=value, as master.cf does, so
# a port serving branches over modem lines is not cut by the LAN's settings.
# 127.0.0.2 is another client than 127.0.0.1 (mynetworks is 127.0.0.1/32).
import smtplib
import socket
import ssl
import time

import pytest

from ports import free_port
from smtpraw import SmtpRaw, message
from wait import wait_until
from test_smtp_limits import read_reply_while, timeout_events

LOCAL = ("hostname = mx.test.example", "local_domains = example.org",
         "local_recipients = alice", "mynetworks = 127.0.0.1/32")
PASSWORD = "s3cret pass"


@pytest.fixture
def auth(pki, tmp_path, run_cli):
    """The pki fixture's certificate and a users file with alice's password
    as a yescrypt hash (mode 600)."""
    users = tmp_path / "users"
    users.write_text("alice %s\n" % run_cli("hash-password", input=PASSWORD + "\n").stdout)
    users.chmod(0o600)
    return ("tls_cert_file = %s" % pki["cert"], "tls_key_file = %s" % pki["key"],
            "auth_users_file = %s" % users)


def two_ports(daemon, second, *lines, first=""):
    """A daemon listening on a plain port (d.port) and a second one with the
    options in second; returns (daemon, second port)."""
    p1, p2 = free_port(), free_port()
    d = daemon("listen = 127.0.0.1:%d %s, 127.0.0.1:%d %s" % (p1, first, p2, second),
               *LOCAL, *lines, port=p1)
    return d, p2


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_command_deadline_per_listener(daemon):
    d, slow = two_ports(daemon, "-o smtp_timeout=1m", "smtp_timeout = 2s")
    with SmtpRaw(d.port) as lan, SmtpRaw(slow) as modem:
        lan.send(b"NO")
        modem.send(b"NO")
        r, took = read_reply_while(lan, lambda: None, timeout=6)
        assert r is not None and r.code == 421, r
        assert took < 4.5, took
        time.sleep(1.0)
        modem.send(b"OP\r\n")
        assert modem.reply().code == 250
    assert timeout_events(d, "command")


def test_session_time_and_data_rate_per_listener(daemon):
    d, slow = two_ports(daemon, "-o smtp_max_session_time=0 -o smtp_min_data_rate=0",
                        "smtp_max_session_time = 14s", "smtp_min_data_rate = 1000")
    lan, modem = SmtpRaw(d.port, source="127.0.0.2"), SmtpRaw(slow, source="127.0.0.2")
    for c in (lan, modem):
        assert c.cmd("EHLO branch.test").code == 250
        assert c.cmd("MAIL FROM:<a@branch.test>").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("DATA").code == 354
    # 21 octets a second: the LAN port cuts it after the 10 s window, the
    # modem port takes it and then outlives smtp_max_session_time.
    t0, cut = time.monotonic(), None
    while time.monotonic() - t0 < 15:
        modem.send(b"x" * 19 + b"\r\n")
        if cut is None:
            try:
                lan.send(b"x" * 19 + b"\r\n")
                cut = (lan.reply(timeout=0.01), time.monotonic() - t0)
            except socket.timeout:
                pass
            except (OSError, EOFError):
                cut = (None, time.monotonic() - t0)
        time.sleep(1.0)
    assert cut and cut[0] and cut[0].code == 421, cut
    assert 9 <= cut[1] <= 13, cut
    modem.send(b".\r\n")
    assert modem.reply().code == 250
    assert modem.cmd("NOOP").code == 250  # past smtp_max_session_time
    modem.close()
    lan.close()
    assert timeout_events(d, "data-rate")


def test_connections_per_client_per_listener(daemon):
    d, branches = two_ports(daemon, "-o max_connections_per_client=3",
                            "max_connections_per_client = 1")
    held = [SmtpRaw(d.port, source="127.0.0.2")]
    with SmtpRaw(d.port, source="127.0.0.2", banner=False) as c:
        assert c.reply().code == 421
    held += [SmtpRaw(branches, source="127.0.0.2") for _ in range(2)]
    for c in held:
        assert c.banner.code == 220
    with SmtpRaw(branches, source="127.0.0.2", banner=False) as c:
        r = c.reply()
        assert r.code == 421 and "too many connections" in r.text, r
    for c in held:
        c.close()


def test_messages_per_client_per_listener(daemon):
    d, branches = two_ports(daemon, "-o max_messages_per_client=0",
                            "max_messages_per_client = 1")
    for port, ok in ((branches, 3), (d.port, 1)):
        with SmtpRaw(port, source="127.0.0.2") as c:
            c.cmd("EHLO branch.test")
            for i in range(ok):
                assert c.cmd("MAIL FROM:<a@branch.test>").code == 250
                assert c.cmd("RSET").code == 250
            if port == d.port:
                assert c.cmd("MAIL FROM:<a@branch.test>").code == 421


def test_connection_rate_and_mynetworks_exemption_per_listener(daemon):
    d, branches = two_ports(daemon, "-o max_connection_rate_per_client=2 "
                            "-o client_limits_exempt_mynetworks=no",
                            "max_connections_per_client = 1")
    # 127.0.0.1 is in mynetworks: exempt on the first port, not on the second
    lan = [SmtpRaw(d.port) for _ in range(3)]
    assert all(c.banner.code == 220 for c in lan)
    first = SmtpRaw(branches)
    assert first.banner.code == 220
    with SmtpRaw(branches, banner=False) as c:
        r = c.reply()
        assert r.code == 421 and "too many connections from" in r.text, r
    first.close()
    for c in lan:
        c.close()
    # two connections a minute on the second port: the third is refused
    time.sleep(0.3)
    with SmtpRaw(branches, banner=False, source="127.0.0.2") as c:
        r = c.reply()
        assert r.code == 220, r
    with SmtpRaw(branches, banner=False, source="127.0.0.2") as c:
        assert c.reply().code == 220
    with SmtpRaw(branches, banner=False, source="127.0.0.2") as c:
        r = c.reply()
        assert r.code == 421 and "per minute" in r.text, r
    ev = d.wait_event(2016, pred=lambda e: e.get("limit") == "connection-rate")
    assert ev and ev[0]["client"] == "127.0.0.2", ev


def test_submission_needs_starttls_then_auth(daemon, auth):
    d, sub = two_ports(daemon, "submission", *auth)
    with SmtpRaw(sub) as c:
        r = c.cmd("EHLO laptop.test")
        assert "STARTTLS" in r.text and "AUTH" not in r.text, r
        assert c.cmd("MAIL FROM:<alice@example.org>").code == 530
        assert c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldCBwYXNz").text.startswith(
            "5.7.0 Must issue a STARTTLS")
    with smtplib.SMTP("127.0.0.1", sub, timeout=10) as s:
        s.starttls(context=client_context())
        s.ehlo("laptop.test")
        assert s.has_extn("auth")
        code, text = s.mail("alice@example.org")
        assert code == 530 and b"Authentication required" in text, text
        s.rset()
        s.login("alice", PASSWORD)
        s.sendmail("alice@example.org", ["alice@example.org"], message("submitted"))
    # the plain port keeps its manners: mail from mynetworks without AUTH
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.sendmail("bob@example.org", ["alice@example.org"], message("lan"))
    assert wait_until(lambda: len(d.maildir_files("alice")) == 2)


def test_submissions_is_implicit_tls(daemon, auth):
    d, subs = two_ports(daemon, "submissions", *auth)
    with smtplib.SMTP_SSL("127.0.0.1", subs, timeout=10, context=client_context()) as s:
        code, text = s.ehlo("laptop.test")
        assert code == 250 and b"STARTTLS" not in text and b"AUTH" in text, text
        s.login("alice", PASSWORD)
        s.sendmail("alice@example.org", ["alice@example.org"], message("over 465"))
    assert wait_until(lambda: len(d.maildir_files("alice")) == 1)
    # a client speaking plain SMTP hears no greeting in clear
    with SmtpRaw(subs, banner=False, timeout=2) as c:
        c.send(b"EHLO x\r\n")
        data = b""
        try:
            data = c.sock.recv(100)
        except OSError:
            pass
        assert not data.startswith(b"220"), data
    listening = d.events_with(1004)
    assert any(e.get("service") == "submissions" for e in listening), listening


def test_listen_options_errors_and_show(daemon, run_cli, tmp_path, auth):
    cfg = tmp_path / "bad.conf"
    cfg.write_text("listen = 127.0.0.1:2525 -o hostname=x, 127.0.0.1:2526 -o smtp_timeout=-3,"
                   " 127.0.0.1:587 submission\nsyslog = no\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0
    assert "bad.conf:1: listen: -o hostname=x: hostname cannot be set per listener" in r.stderr, \
        r.stderr
    cfg.write_text("listen = 127.0.0.1:587 submission\nsyslog = no\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0
    assert "bad.conf:1: listen: 127.0.0.1:587 submission needs tls_cert_file" in r.stderr, \
        r.stderr
    cfg.write_text("listen = 127.0.0.1:25, 127.0.0.1:587 submission -o smtp_timeout=30m\n"
                   + "\n".join(auth) + "\n")
    r = run_cli("show-config", "-n", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert ("listen = 127.0.0.1:25, 127.0.0.1:587 submission -o smtp_timeout=30m"
            in r.stdout), r.stdout
