# STARTTLS (RFC 3207) and AUTH (RFC 4954) in the SMTP server, with real
# clients: swaks, Python's smtplib, raw sockets wrapped in TLS, and our own
# SMTP client engine (build/smtpc). The daemon's certificate is made by
# `openssl req` in each test; 127.0.0.1 is outside mynetworks, so relaying
# needs AUTH.
import json
import os
import re
import smtplib
import ssl
import subprocess
import warnings
from pathlib import Path

import pytest

from smtpraw import SmtpRaw, message, queued_id
from wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
USERS = {"alice": "s3cret pass", "bob": "b:ob"}


@pytest.fixture
def pki(tmp_path):
    """A self-signed certificate for localhost and a users file (mode 600)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    users = tmp_path / "users"
    # alice in plaintext for CRAM-MD5, bob as a yescrypt hash
    bob = subprocess.run([os.environ.get("DIALMAIL_BIN", str(ROOT / "build" / "dialmail")),
                          "hash-password"], input=USERS["bob"] + "\n", capture_output=True,
                         text=True, check=True).stdout.strip()
    users.write_text("# test users\nalice {PLAIN}%s\nbob:%s\n" % (USERS["alice"], bob))
    users.chmod(0o600)
    return {"cert": cert, "key": key, "users": users}


def tls_config(pki, *extra, mynetworks="192.0.2.0/24"):
    return ("hostname = mx.test.example", "local_domains = example.org",
            "local_recipients = alice, bob", "mynetworks = " + mynetworks,
            "tls_cert_file = %s" % pki["cert"], "tls_key_file = %s" % pki["key"],
            "auth_users_file = %s" % pki["users"], *extra)


def ehlo_keywords(reply):
    return [line.split()[0].upper() for line in reply.lines[1:]]


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def swaks(port, *args, timeout=30):
    return subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port),
                           "--from", "sender@client.test", "--helo", "client.test",
                           "--timeout", "10", *args],
                          capture_output=True, text=True, timeout=timeout)


class TlsRaw(SmtpRaw):
    """SmtpRaw whose socket is wrapped in TLS after a 220 to STARTTLS."""

    def starttls(self):
        self.sock = client_context().wrap_socket(self.sock, server_hostname="localhost")
        self.sock.settimeout(self.timeout)


# ------------------------------------------------------------ extensions


def test_ehlo_before_and_after_starttls(daemon, pki):
    d = daemon(*tls_config(pki))
    with d.smtp() as c:
        r = c.cmd("EHLO client.test")
        assert ehlo_keywords(r) == ["PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES",
                                    "STARTTLS", "CHUNKING", "DSN"], r
        assert c.cmd("STARTTLS").code == 220
        c.__class__ = TlsRaw
        c.starttls()
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        r = c.cmd("EHLO client.test")
        assert ehlo_keywords(r) == ["PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES",
                                    "AUTH", "CHUNKING", "DSN"], r
        assert "AUTH PLAIN LOGIN CRAM-MD5" in r.lines
        assert c.cmd("STARTTLS").code == 503


def test_session_is_reset_by_starttls(daemon, pki):
    """RFC 3207 4.2: after the handshake the client must EHLO again and
    the transaction it had begun is forgotten."""
    d = daemon(*tls_config(pki, mynetworks="127.0.0.0/8"))
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("STARTTLS").code == 220
        c.__class__ = TlsRaw
        c.starttls()
        r = c.cmd("MAIL FROM:<a@client.test>")
        assert r.code == 503 and "HELO" in r.text, r
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250


def test_starttls_not_offered_without_certificate(daemon):
    d = daemon("local_domains = example.org")
    with d.smtp() as c:
        assert "STARTTLS" not in ehlo_keywords(c.cmd("EHLO client.test"))
        assert c.cmd("STARTTLS").code == 454
        assert c.cmd("AUTH PLAIN AGFsaWNlAHg=").code == 502
        assert c.cmd("NOOP").code == 250


def test_tls_below_1_2_is_refused(daemon, pki):
    d = daemon(*tls_config(pki))
    ctx = client_context()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, AttributeError):
        pytest.skip("this Python cannot offer TLS 1.1")
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("STARTTLS").code == 220
        with pytest.raises((ssl.SSLError, OSError)):
            ctx.wrap_socket(c.sock, server_hostname="localhost").do_handshake()
    with d.smtp() as c:  # the daemon goes on
        assert c.cmd("NOOP").code == 250


# -------------------------------------------------------- STARTTLS injection


def test_starttls_injection_is_discarded(daemon, pki):
    """STARTTLS and more commands in one write: the commands sent in clear
    are dropped, never run inside TLS (CVE-2011-0411 class), and an event
    says so."""
    d = daemon(*tls_config(pki, mynetworks="127.0.0.0/8"))
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<injected@evil.test>\r\n")
        r = c.reply()
        assert r.code == 220, r
        assert c.buf == b"", "reply to an injected command in clear: %r" % c.buf
        c.__class__ = TlsRaw
        c.starttls()
        # Had the injected MAIL run inside TLS, this RCPT would be accepted
        # (and a reply to the injected EHLO/MAIL would come first).
        r = c.cmd("RCPT TO:<alice@example.org>")
        assert r.code == 503, r
        r = c.cmd("EHLO client.test")
        assert r.code == 250 and "STARTTLS" not in ehlo_keywords(r)
    ev = d.wait_event(4197)
    assert ev and ev[0]["client"] == "127.0.0.1", ev
    assert "discarded" in ev[0]["text"]


def test_starttls_then_rset_in_one_write(daemon, pki):
    d = daemon(*tls_config(pki))
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"STARTTLS\r\nRSET\r\n")
        assert c.reply().code == 220
        c.__class__ = TlsRaw
        c.starttls()
        r = c.cmd("NOOP")  # the first reply inside TLS is to NOOP, not to RSET
        assert r.code == 250 and r.lines == ["2.0.0 Ok"], r
        assert c.buf == b""
    assert d.wait_event(4197)


# ------------------------------------------------------------------ AUTH


def test_auth_refused_in_clear(daemon, pki):
    d = daemon(*tls_config(pki))
    with d.smtp() as c:
        r = c.cmd("EHLO client.test")
        assert "AUTH" not in ehlo_keywords(r)
        r = c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))
        assert r.code == 538 and "5.7.11" in r.text, r
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        r = c.cmd("RCPT TO:<x@remote.example>")
        assert r.code == 554, r
    assert not d.events_with(4195)


def test_auth_allow_plaintext(daemon, pki):
    d = daemon(*tls_config(pki), "auth_allow_plaintext = yes")
    with d.smtp() as c:
        assert "AUTH" in ehlo_keywords(c.cmd("EHLO client.test"))
        r = c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))
        assert r.code == 235, r


def plain(user, password, authz=""):
    import base64
    return base64.b64encode(("%s\0%s\0%s" % (authz, user, password)).encode()).decode()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_auth_relays_from_outside_mynetworks(daemon, pki, mech):
    d = daemon(*tls_config(pki))
    user = "bob" if mech == "LOGIN" else "alice"
    r = swaks(d.port, "--to", "carol@remote.example", "--tls", "--auth", mech,
              "--auth-user", user, "--auth-password", USERS[user])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout
    qid = queued_id(re.search(r"<~  (250 2\.0\.0 Ok: queued as \S+)", r.stdout).group(1))
    assert qid in d.queue_ids()
    ev = d.wait_event(4195)
    assert ev and ev[0]["user"] == user and ev[0]["mechanism"] == mech, ev


def test_swaks_without_auth_cannot_relay(daemon, pki):
    d = daemon(*tls_config(pki))
    r = swaks(d.port, "--to", "carol@remote.example", "--tls")
    assert r.returncode != 0
    assert "554 5.7.1" in r.stdout, r.stdout
    assert d.queue() == []


def test_swaks_wrong_password(daemon, pki):
    d = daemon(*tls_config(pki))
    r = swaks(d.port, "--to", "carol@remote.example", "--tls", "--auth", "PLAIN",
              "--auth-user", "alice", "--auth-password", "Wr0ngPw")
    assert r.returncode != 0
    assert "535 5.7.8" in r.stdout, r.stdout
    ev = d.wait_event(4196)
    assert ev and ev[0]["user"] == "alice" and ev[0]["severity"] == "warning", ev
    assert "Wr0ngPw" not in json.dumps(d.events())  # no password in the log
    assert d.queue() == []


def test_smtplib_starttls_login_and_local_delivery(daemon, pki):
    """smtplib picks CRAM-MD5 first; the message arrives byte-exact and the
    Received: header says ESMTPSA (RFC 3848)."""
    d = daemon(*tls_config(pki))
    msg = message("via smtplib", body="over TLS\r\n.dot line")
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.ehlo("client.test")
        s.starttls(context=client_context())
        s.ehlo("client.test")
        assert s.has_extn("auth") and s.has_extn("chunking")
        code, _ = s.login("alice", USERS["alice"])
        assert code == 235
        refused = s.sendmail("sender@client.test", ["alice@example.org", "carol@remote.example"],
                             msg)
        assert refused == {}
    files = wait_until(lambda: d.maildir_files("alice"), 10)
    assert len(files) == 1
    got = files[0].read_bytes()
    assert got.endswith(msg.replace(b"\r\n", b"\n")), got
    assert re.search(rb"(?m)^\s+by mx\.test\.example .*with ESMTPSA", got) or \
        b"with ESMTPSA" in got, got
    ev = d.wait_event(4195)
    assert ev[0]["mechanism"] == "CRAM-MD5"


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_smtplib_each_mechanism(daemon, pki, mech):
    d = daemon(*tls_config(pki))
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.starttls(context=client_context())
        s.ehlo("client.test")
        s.user, s.password = "bob", USERS["bob"]
        code, text = s.auth(mech, getattr(s, "auth_" + mech.lower()),
                            initial_response_ok=(mech == "PLAIN"))
        assert code == 235, text


def test_auth_protocol_errors(daemon, pki):
    d = daemon(*tls_config(pki))
    with TlsRaw(d.port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("STARTTLS").code == 220
        c.starttls()
        assert c.cmd("AUTH PLAIN").code == 503  # EHLO again first
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("AUTH DIGEST-MD5").code == 504
        assert c.cmd("AUTH").code == 501
        r = c.cmd("AUTH LOGIN")
        assert r.code == 334 and r.lines == ["VXNlcm5hbWU6"], r
        r = c.cmd("*")
        assert r.code == 501 and "cancelled" in r.text, r
        r = c.cmd("AUTH PLAIN")  # empty challenge, then the answer
        assert r.code == 334 and r.lines == [""], r
        assert c.cmd("not base64!").code == 501
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        r = c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))
        assert r.code == 503, r  # not inside a transaction
        assert c.cmd("RSET").code == 250
        r = c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"], authz="bob"))
        assert r.code == 535, r  # acting for another user (second failure)
        assert c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"])).code == 235
        assert c.cmd("QUIT").code == 221


def test_three_failures_close_with_421(daemon, pki):
    d = daemon(*tls_config(pki))
    with TlsRaw(d.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS").code == 220
        c.starttls()
        c.cmd("EHLO client.test")
        for i in range(2):
            r = c.cmd("AUTH PLAIN " + plain("alice", "guess%d" % i))
            assert r.code == 535 and "5.7.8" in r.text, r
        c.send(("AUTH PLAIN %s\r\n" % plain("nosuchuser", "x")).encode())
        replies = c.replies_until_close()
        assert [r.code for r in replies] == [535, 421], replies
    assert len(d.wait_event(4196, pred=lambda e: True)) >= 3
    with d.smtp() as c:  # a new session may try again
        assert c.cmd("NOOP").code == 250


def test_auth_twice_503_and_mail_auth_parameter(daemon, pki):
    d = daemon(*tls_config(pki))
    with TlsRaw(d.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS").code == 220
        c.starttls()
        c.cmd("EHLO client.test")
        assert c.cmd("AUTH PLAIN " + plain("bob", USERS["bob"])).code == 235
        assert c.cmd("AUTH PLAIN " + plain("bob", USERS["bob"])).code == 503
        assert c.cmd("MAIL FROM:<a@client.test> AUTH=<>").code == 250
        assert c.cmd("RCPT TO:<dave@remote.example>").code == 250


# ------------------------------------------------------- configuration


def test_check_config_refuses_bad_files(run_cli, tmp_path, pki):
    cfg = tmp_path / "c.conf"
    pki["users"].chmod(0o644)
    cfg.write_text("tls_cert_file = %s\ntls_key_file = %s\nauth_users_file = %s\n"
                   % (pki["cert"], pki["key"], pki["users"]))
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "group or others" in r.stderr + r.stdout, r
    pki["users"].chmod(0o600)
    assert run_cli("check-config", "--config", str(cfg)).returncode == 0
    cfg.write_text("tls_cert_file = %s\ntls_key_file = %s\n" % (pki["cert"], tmp_path / "nokey"))
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "tls_key_file" in r.stderr + r.stdout, r
    cfg.write_text("tls_cert_file = %s\ntls_key_file = %s\n" % (pki["key"], pki["key"]))
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "tls_cert_file" in r.stderr + r.stdout, r
    cfg.write_text("auth_users_file = %s\n" % pki["users"])
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "only over TLS" in r.stderr + r.stdout, r
    cfg.write_text("auth_users_file = %s\nauth_allow_plaintext = yes\n" % pki["users"])
    assert run_cli("check-config", "--config", str(cfg)).returncode == 0


def test_relative_paths_are_relative_to_the_config_file(daemon, pki, tmp_path):
    d = daemon("tls_cert_file = cert.pem", "tls_key_file = key.pem", "auth_users_file = users")
    with d.smtp() as c:
        assert "STARTTLS" in ehlo_keywords(c.cmd("EHLO client.test"))


# ------------------------------------------- our own client against us


@pytest.fixture(scope="module")
def smtpc_bin():
    bin_dir = Path(os.environ.get("DIALMAIL_BIN", ROOT / "build" / "dialmail")).resolve().parent
    path = Path(os.environ.get("SMTPC_BIN", bin_dir / "smtpc"))
    if not path.exists():
        pytest.skip("smtpc not built (make integration builds it)")
    return str(path)


def test_smtpc_chunking_pipelining_starttls_auth(daemon, pki, smtpc_bin, dialmail_bin, tmp_path):
    """The SMTP client engine (tools/smtpc) sends three queued messages to
    our server: STARTTLS with verification against the test's CA, AUTH,
    CHUNKING and PIPELINING; each arrives byte-exact."""
    d = daemon(*tls_config(pki))
    spool = tmp_path / "out"
    env = dict(os.environ, DIALMAIL_DIR=str(spool))
    bodies = [b"Subject: m%d\n\nline\n.dot line %d\n..two dots\n" % (i, i) for i in range(3)]
    for b in bodies:
        r = subprocess.run([str(dialmail_bin), "sendmail", "-f", "alice@branch.example", "--",
                            "bob@example.org", "carol@remote.example"],
                           input=b, env=env, capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
    ids = sorted(p.name for p in (spool / "queue").iterdir())
    contents = []
    for qid in ids:
        raw = (spool / "queue" / qid).read_bytes()
        m = re.search(rb"\nsize (\d+)\n", raw)
        contents.append(raw[m.end(): m.end() + int(m.group(1))])
    r = subprocess.run([smtpc_bin, "--dir", str(spool), "--tls", "required", "--ca",
                        str(pki["cert"]), "--servername", "localhost", "--auth",
                        "alice:" + USERS["alice"], "127.0.0.1:%d" % d.port],
                       capture_output=True, timeout=60)
    lines = [json.loads(ln) for ln in r.stdout.decode().splitlines() if ln.strip()]
    sess = lines[-1]
    assert sess.get("cause") == "ok", (r.stdout, r.stderr)
    assert sess["tls"] and sess["authenticated"] and sess["messages_ok"] == 3, sess
    assert all(x["status"] == "ok" for x in lines[:-1]) and len(lines) == 7, lines
    files = wait_until(lambda: d.maildir_files("bob") if len(d.maildir_files("bob")) == 3 else [],
                       10)
    got = sorted(f.read_bytes() for f in files)
    for c in contents:
        want = c.replace(b"\r\n", b"\n")
        assert sum(g.endswith(want) for g in got) == 1, (want, got)
    assert all(b"with ESMTPSA" in g for g in got)
    assert len(d.queue()) == 3  # carol@remote.example has no route: queued
