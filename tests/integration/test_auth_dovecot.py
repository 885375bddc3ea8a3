# SMTP AUTH through a real Dovecot auth service (auth_dovecot_socket, as
# Postfix's smtpd_sasl_type = dovecot): PLAIN and LOGIN pass through the
# auth-client socket; Dovecot's failure delay does not stall other
# sessions; a missing auth service is a temporary failure (454).
import smtplib
import ssl
import subprocess
import time

import pytest

from dovecot import Dovecot
from ports import free_port
from smtpraw import SmtpRaw, message
from wait import wait_until

PASSWORD = "dove pw"


@pytest.fixture
def dovecot(tmp_path):
    d = Dovecot(tmp_path, passwords={"alice": PASSWORD})
    d.start()
    assert wait_until(d.auth_socket.exists, 10), d.diagnostics()
    yield d
    d.stop()


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def start(daemon, pki, socket_path):
    """A daemon with a plain port (d.port) and a submission port."""
    p1, p2 = free_port(), free_port()
    d = daemon("listen = 127.0.0.1:%d, 127.0.0.1:%d submission" % (p1, p2),
               "hostname = mx.test.example", "local_domains = example.org",
               "local_recipients = alice", "mynetworks = 127.0.0.1/32",
               "tls_cert_file = %s" % pki["cert"], "tls_key_file = %s" % pki["key"],
               "auth_dovecot_socket = %s" % socket_path, port=p1)
    return d, p2


def test_plain_through_dovecot_then_mail_is_accepted(daemon, pki, dovecot):
    d, sub = start(daemon, pki, dovecot.auth_socket)
    with smtplib.SMTP("127.0.0.1", sub, timeout=20) as s:
        s.starttls(context=client_context())
        code, text = s.ehlo("laptop.test")
        assert b"AUTH PLAIN LOGIN" in text, text
        assert s.login("alice", PASSWORD)[0] == 235
        s.sendmail("alice@example.org", ["alice@example.org"], message("via dovecot"))
    assert wait_until(lambda: len(d.maildir_files("alice")) == 1, 10)
    ev = d.wait_event(4195)
    assert ev and ev[0]["user"] == "alice" and ev[0]["mechanism"] == "PLAIN", ev


def test_login_mechanism_with_swaks(daemon, pki, dovecot):
    d, sub = start(daemon, pki, dovecot.auth_socket)
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(sub), "--tls",
                        "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", PASSWORD,
                        "--from", "alice@example.org", "--to", "alice@example.org",
                        "--timeout", "20"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "334 VXNlcm5hbWU6" in r.stdout and "235 2.7.0" in r.stdout, r.stdout


def test_wrong_password_does_not_stall_other_sessions(daemon, pki, dovecot):
    d, sub = start(daemon, pki, dovecot.auth_socket)
    s = smtplib.SMTP("127.0.0.1", sub, timeout=20)
    s.starttls(context=client_context())
    s.ehlo("laptop.test")
    t0 = time.monotonic()
    s.send(b"AUTH PLAIN AGFsaWNlAFdyMG5nUHc=\r\n")  # alice / Wr0ngPw
    # Dovecot holds a failure back (auth_failure_delay, 2 s); meanwhile the
    # daemon answers another client at once.
    with SmtpRaw(d.port) as c:
        t1 = time.monotonic()
        assert c.cmd("NOOP").code == 250
        other = time.monotonic() - t1
    code, text = s.getreply()
    took = time.monotonic() - t0
    s.close()
    assert code == 535, text
    assert other < 0.5 and took > 1.0, (other, took)
    ev = d.wait_event(4196)
    assert ev and ev[0]["user"] == "alice", ev
    assert "Wr0ngPw" not in str(d.events())


def test_no_auth_service_is_a_temporary_failure(daemon, pki, tmp_path):
    d, sub = start(daemon, pki, tmp_path / "no-such-socket")
    with smtplib.SMTP("127.0.0.1", sub, timeout=20) as s:
        s.starttls(context=client_context())
        s.ehlo("laptop.test")
        code, text = s.docmd("AUTH", "PLAIN AGFsaWNlAHgXeA==")
        assert code == 454 and text.startswith(b"4.7.0"), text
        code, text = s.docmd("AUTH", "PLAIN AGFsaWNl\tdXNlcj1yb290")
        assert code == 501, text  # nothing but base64 reaches the auth protocol


def test_dovecot_and_table_are_exclusive(run_cli, tmp_path):
    users = tmp_path / "users"
    users.write_text("alice {PLAIN}x\n")
    users.chmod(0o600)
    cfg = tmp_path / "c.conf"
    cfg.write_text("auth_allow_plaintext = yes\nauth_users_file = %s\n"
                   "auth_dovecot_socket = /run/dovecot/auth-client\n" % users)
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0
    assert "c.conf:3: auth_dovecot_socket: give auth_users_file or auth_dovecot_socket" \
        in r.stderr, r.stderr
