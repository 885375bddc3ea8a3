"""A real Postfix as the smarthost: a private instance on a loopback port
(tests/lib/postfix.py) with STARTTLS (a certificate this test generates) and
SASL AUTH through a private Dovecot auth service (passwd-file). 127.0.0.1 is
not in Postfix's mynetworks, so only an authenticated client may relay.
Every accepted message goes to Postfix's hold queue; the test reads it back
with postcat and compares headers and body byte for byte with what dialmail
queued (Postfix only prepends its own Received: header).
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from wait import wait_until

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
POSTCAT = "/usr/sbin/postcat"
USER, PASSWORD = "branch-office", "s3cret pass"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix needs root")


class DovecotSasl:
    """Dovecot with no protocols: only its auth service, for Postfix's
    smtpd_sasl_type = dovecot. Stopped by PID."""

    def __init__(self, root):
        self.root = root
        self.socket = root / "auth"
        self.log = root / "dovecot.log"
        users = root / "users"
        users.write_text("%s:{PLAIN}%s\n" % (USER, PASSWORD))
        users.chmod(0o644)
        self.conf = root / "dovecot.conf"
        self.conf.write_text("""
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
protocols =
ssl = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {sock} {{
    mode = 0666
  }}
}}
""".format(r=root, users=users, sock=self.socket))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-c", str(self.conf), "-F"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: self.socket.exists() or self.proc.poll() is not None, 10)
        assert self.proc.poll() is None and self.socket.exists(), self.log_text()
        return self

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def world():
    """A directory Postfix (user postfix) can traverse: cert, key, auth socket."""
    root = Path(tempfile.mkdtemp(prefix="dialmail-pf-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cert(world):
    key, crt = world / "key.pem", world / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=postfix.test",
                    "-addext", "subjectAltName=DNS:postfix.test,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return crt, key


def tls_postfix_class():
    from postfix import PostfixInstance

    class TlsPostfix(PostfixInstance):
        """PostfixInstance plus the tlsmgr service smtpd needs for TLS
        (its PRNG seed and session cache); the shared master.cf lacks it."""

        def _write_config(self):
            super()._write_config()
            with open(os.path.join(self.config_dir, "master.cf"), "a") as f:
                f.write("tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n")

    return TlsPostfix


@pytest.fixture
def postfix(world, cert):
    PostfixInstance = tls_postfix_class()
    if not os.path.exists("/usr/sbin/postfix") or not os.path.exists(DOVECOT):
        pytest.fail("postfix or dovecot missing: run scripts/install-deps")
    sasl = DovecotSasl(world).start()
    crt, key = cert
    pf = PostfixInstance(relay_domains=[], hold=True, main={
        "mynetworks": "127.0.0.2/32",  # the test client (127.0.0.1) must authenticate
        "smtpd_tls_cert_file": str(crt),
        "smtpd_tls_key_file": str(key),
        "smtpd_tls_security_level": "may",
        "smtpd_tls_auth_only": "yes",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": str(sasl.socket),
        "smtpd_relay_restrictions":
            "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    })
    try:
        pf.start()
        yield pf
    finally:
        pf.stop()
        sasl.stop()


def pf_daemon(daemon, tmp_path, pf, crt, password=PASSWORD, start=True):
    auth = tmp_path / "auth"
    auth.write_text("isp %s %s\n" % (USER, password))
    auth.chmod(0o600)
    return daemon("local_recipients = alice", "queue_run_interval = 1h",
                  "auth_file = %s" % auth, "[routes]",
                  "* = smarthost 127.0.0.1:%d tls=required auth=isp ca=%s" % (pf.port, crt),
                  start=start)


def held_message(pf, qfile):
    """Header and body of a held Postfix queue file, as postcat prints them
    (LF line ends)."""
    r = subprocess.run([POSTCAT, "-c", pf.config_dir, "-h", "-b", qfile], capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def strip_first_received(text):
    """Removes the Received: header Postfix prepended (with its folded lines)."""
    assert text.startswith(b"Received: "), text[:200]
    m = re.match(rb"Received: [^\n]*\n(?:[ \t][^\n]*\n)*", text)
    return text[m.end():]


def sendmail(dm, rcpts, body, sender="alice@localhost"):
    env = dict(os.environ, DIALMAIL_DIR=str(dm.dir))
    before = set(p.name for p in (dm.dir / "queue").glob("*")) if (dm.dir / "queue").exists() else set()
    r = subprocess.run([dm.bin, "sendmail", "-f", sender, "--", *rcpts], input=body,
                       env=env, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    new = sorted(set(p.name for p in (dm.dir / "queue").glob("*")) - before)
    assert len(new) == 1
    raw = (dm.dir / "queue" / new[0]).read_bytes()
    m = re.search(rb"\nsize (\d+)\n", raw)
    return raw[m.end(): m.end() + int(m.group(1))]


def test_postfix_smarthost_tls_auth_byte_exact(daemon, tmp_path, postfix, cert):
    crt, _ = cert
    dm = pf_daemon(daemon, tmp_path, postfix, crt, start=False)
    bodies = [
        b"From: Alice <alice@localhost>\nTo: bob@partner.example\nSubject: one\n"
        b"Message-ID: <one@branch.test>\nDate: Wed, 25 Nov 2026 12:00:00 +0000\n\n"
        b"first line\n.starts with a dot\n\nlast\n",
        b"From: alice@localhost\nTo: carol@partner.example\nSubject: =?utf-8?q?zwei?=\n"
        b"Message-ID: <two@branch.test>\nDate: Wed, 25 Nov 2026 12:00:01 +0000\n"
        b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: 8bit\n\n" + "Grüße, 8-bit\n".encode() + b"x" * 900 + b"\n",
    ]
    stored = [sendmail(dm, ["bob@partner.example"], bodies[0]),
              sendmail(dm, ["carol@partner.example", "dave@partner.example"], bodies[1])]
    dm.start()
    assert wait_until(lambda: dm.queue_ids() == [], 20), (dm.queue(), dm.events(),
                                                          postfix.log_tail())
    assert wait_until(lambda: postfix.queue_count(("hold",)) == 2, 10), postfix.postqueue()
    held = [held_message(postfix, f) for f in postfix.queue_files(("hold",))]
    got = sorted(strip_first_received(h) for h in held)
    want = sorted(s.replace(b"\r\n", b"\n") for s in stored)
    assert got == want
    # Postfix saw TLS and SASL: "ESMTPSA" (RFC 3848: S = TLS, A = AUTH), and its log
    assert all(b"with ESMTPSA id" in h[:300] for h in held), held[0][:400]
    log = postfix.log_tail(200)
    assert "sasl_method=PLAIN, sasl_username=%s" % USER in log, log
    ev = dm.events_with(3001)
    assert len(ev) == 3
    assert "dave@partner.example" in postfix.postqueue()


def test_postfix_wrong_password_defers_nothing_relayed(daemon, tmp_path, postfix, cert):
    crt, _ = cert
    dm = pf_daemon(daemon, tmp_path, postfix, crt, password="wrong")
    r = subprocess.run([dm.bin, "sendmail", "-f", "alice@localhost", "--", "bob@partner.example"],
                       input=b"Subject: x\n\nbody\n",
                       env=dict(os.environ, DIALMAIL_DIR=str(dm.dir)), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    ev = dm.wait_event(3010, timeout=15)
    assert ev and ev[0]["cause"] == "auth-failed", dm.events()
    assert "535" in ev[0]["text"]
    assert postfix.queue_count() == 0
    st = [x for e in dm.queue() for x in e["recipients"]]
    assert st and st[0]["state"] == "pending" and st[0]["attempts"] == 1
