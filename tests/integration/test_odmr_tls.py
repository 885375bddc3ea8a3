# ODMR (RFC 2645) under TLS: the hub's ODMR port with a certificate offers
# STARTTLS, keeps AUTH PLAIN for TLS, and delivers the held mail over the
# same TLS connection after ATRN; a dialmail branch verifies the hub's
# certificate (atrn_tls, atrn_ca, atrn_fingerprint) before it sends AUTH.
# The certificates come from `openssl` in each test (a private CA).
# Invariant: every process is stopped by PID, every wait is bounded.
import base64
import hashlib
import socket
import ssl
import threading

import pytest

from dialup import dial, ledger
from dnsmasq import ZONE
from odmr import PASSWORD, USER, branch, cram, hub, serve_reversed, tls_hub
from pki import make_ca, make_server_cert
from smtpraw import SmtpRaw, message, send_message
from wait import wait_until


def fingerprint(cert):
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).hexdigest()


class TlsRaw(SmtpRaw):
    def starttls(self, cafile):
        ctx = ssl.create_default_context(cafile=str(cafile))
        assert self.buf == b""
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.sock.settimeout(self.timeout)


def plain(user, password):
    return base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()


def tls_session(h, pki):
    c = TlsRaw(h.odmr_port)
    ehlo = c.cmd("EHLO branch.example")
    assert "STARTTLS" in ehlo.lines, ehlo
    assert c.cmd("STARTTLS").code == 220
    c.starttls(pki["ca"])
    return c


# --- the hub's ODMR port with a certificate -----------------------------------


def test_hub_odmr_port_plain_only_after_starttls(daemon, tmp_path, pki):
    h = tls_hub(daemon, tmp_path, pki)
    with SmtpRaw(h.odmr_port) as c:
        ehlo = c.cmd("EHLO branch.example")
        assert "STARTTLS" in ehlo.lines and "ATRN" in ehlo.lines, ehlo
        auth = [ln for ln in ehlo.lines if ln.upper().startswith("AUTH")]
        assert auth and "PLAIN" not in auth[0].upper().split(), ehlo
        assert "CRAM-MD5" in auth[0].upper().split(), ehlo
        assert c.cmd("AUTH PLAIN %s" % plain(USER, PASSWORD)).code == 538
        assert cram(c, USER, PASSWORD).code == 235  # CRAM-MD5 is fine in clear
        assert c.cmd("ATRN branch.example").code == 453  # nothing held


def test_hub_delivers_held_mail_over_tls(daemon, tmp_path, pki):
    h = tls_hub(daemon, tmp_path, pki)
    held = message("held under TLS", body="secret line\r\n..dot line\r\nend")
    assert send_message(h.port, "s@sender.example", ["bob@branch.example"], held).code == 250
    assert len(h.queue_ids()) == 1
    with tls_session(h, pki) as c:
        ehlo = c.cmd("EHLO branch.example")
        auth = [ln for ln in ehlo.lines if ln.upper().startswith("AUTH")]
        assert auth and "PLAIN" in auth[0].upper().split() and "STARTTLS" not in ehlo.lines
        assert c.cmd("AUTH PLAIN %s" % plain(USER, PASSWORD)).code == 235
        r = c.cmd("ATRN branch.example")
        assert r.code == 250, r
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        got = serve_reversed(c)  # on the TLS socket
    assert got[-1] == "QUIT" and len(got) == 2, got
    rcpts, data = got[0]
    assert rcpts == ["bob@branch.example"]
    assert data.startswith(b"Received: ") and data.endswith(held.replace(b"\r\n..", b"\r\n.")), data
    assert wait_until(lambda: h.queue_ids() == [], 5), h.queue_ids()
    done = h.wait_event(3031, 5)
    assert done and "1 delivered, 0 still held" in done[0]["text"], h.events()
    sent = [t for t in h.tracking() if "bob@branch.example\t250 queued" in t]
    assert len(sent) == 1, h.tracking()  # the site's reply, as the hub records it


def test_hub_refuses_wrong_password_and_foreign_domain_over_tls(daemon, tmp_path, pki):
    h = tls_hub(daemon, tmp_path, pki)
    assert send_message(h.port, "s@sender.example", ["x@other.example"],
                        message("for bob's domain")).code == 250
    with tls_session(h, pki) as c:
        c.cmd("EHLO branch.example")
        assert c.cmd("AUTH PLAIN %s" % plain(USER, "wrong")).code == 535
        assert c.cmd("ATRN branch.example").code == 530  # still not authenticated
        assert c.cmd("AUTH PLAIN %s" % plain(USER, PASSWORD)).code == 235
        r = c.cmd("ATRN other.example")
        assert r.code == 450, r
        assert c.cmd("QUIT").code == 221
    assert len(h.queue_ids()) == 1
    refused = h.events_with(4199)
    assert refused and refused[0]["user"] == USER and "other.example" in refused[0]["text"]


# --- a dialmail branch verifying the hub -------------------------------------------


def held_for_branch(h, n=1):
    bodies = [message("held %d" % i, body="held body %d\r\n..leading dot" % i) for i in range(n)]
    for b in bodies:
        assert send_message(h.port, "s@sender.example", ["bob@branch.example"], b).code == 250
    return bodies


def assert_arrived(br, bodies):
    files = br.maildir_files("bob")
    assert len(files) == len(bodies), br.events()
    got = sorted(f.read_bytes() for f in files)
    for b in bodies:
        want = b.replace(b"\r\n..", b"\r\n.").replace(b"\r\n", b"\n")
        assert sum(g.endswith(want) for g in got) == 1, (want, got)


def tls_steps(br):
    return [e["text"] for e in br.events_with(4124) if "TLS" in e["text"]]


def test_branch_tls_required_with_the_right_ca(daemon, tmp_path, pki):
    h = tls_hub(daemon, tmp_path, pki)
    bodies = held_for_branch(h, 2)
    br = branch(daemon, tmp_path, "127.0.0.1:%d" % h.odmr_port, "atrn_tls = required",
                "atrn_ca = %s" % pki["ca"])
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_arrived(br, bodies)
    steps = tls_steps(br)
    assert len(steps) == 1 and "certificate verified" in steps[0], br.events_with(4124)
    assert ledger(br)[0]["result"] == "ok"
    assert wait_until(lambda: h.queue_ids() == [], 5)
    assert "atrn_tls = required" in br.cli("show-config", "--config", str(br.config)).stdout


def test_branch_tls_wrong_ca_refuses_the_hub(daemon, tmp_path, pki):
    h = tls_hub(daemon, tmp_path, pki)
    held_for_branch(h)
    br = branch(daemon, tmp_path, "127.0.0.1:%d" % h.odmr_port, "atrn_tls = required",
                "atrn_ca = %s" % pki["other_ca"])
    dial(br)
    ev = br.wait_event(4121, 10)
    assert ev, br.events()
    text = ev[0]["text"]
    assert "does not verify" in text and "atrn_ca" in text and "nothing sent" in text, text
    assert "certificate" in text and ("unable to get local issuer" in text
                                      or "self-signed" in text or "self signed" in text), text
    assert br.maildir_files("bob") == []
    assert len(h.queue_ids()) == 1  # still held at the hub
    assert not h.events_with(2031)  # no ATRN accepted
    # the hub never saw AUTH: no authentication events at all
    assert not [e for e in h.events() if "alice" in e["text"]], h.events()


def test_branch_tls_name_must_match(daemon, tmp_path, tmp_path_factory):
    ca = make_ca(tmp_path, "named")
    srv = make_server_cert(ca, names="DNS:elsewhere.example")
    pki = {"cert": srv["cert"], "key": srv["key"], "ca": ca["cert"]}
    h = tls_hub(daemon, tmp_path, pki)
    held_for_branch(h)
    br = branch(daemon, tmp_path, "127.0.0.1:%d" % h.odmr_port, "atrn_ca = %s" % pki["ca"])
    dial(br)
    ev = br.wait_event(4121, 10)
    assert ev and "does not verify" in ev[0]["text"], br.events()
    assert "mismatch" in ev[0]["text"], ev[0]["text"]
    assert len(h.queue_ids()) == 1


def test_branch_tls_fingerprint_pin(daemon, tmp_path, pki):
    h = tls_hub(daemon, tmp_path, pki)
    bodies = held_for_branch(h)
    fp = fingerprint(pki["cert"])
    colons = ":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()
    bad = branch(daemon, tmp_path, "127.0.0.1:%d" % h.odmr_port, "atrn_tls = required",
                 "atrn_fingerprint = sha256:%s" % ("0" * 64))
    dial(bad)
    ev = bad.wait_event(4121, 10)
    assert ev and "does not match atrn_fingerprint" in ev[0]["text"], bad.events()
    assert len(h.queue_ids()) == 1
    good = branch(daemon, tmp_path, "127.0.0.1:%d" % h.odmr_port, "atrn_tls = required",
                  "atrn_fingerprint = sha256:%s" % colons)
    r = dial(good)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_arrived(good, bodies)
    assert "matches the pin" in tls_steps(good)[0]


def test_branch_tls_required_but_not_offered(daemon, tmp_path):
    h = hub(daemon, tmp_path)  # no certificate: no STARTTLS
    held_for_branch(h)
    br = branch(daemon, tmp_path, "127.0.0.1:%d" % h.odmr_port, "atrn_tls = required")
    dial(br)
    ev = br.wait_event(4121, 10)
    assert ev and "atrn_tls = required" in ev[0]["text"], br.events()
    assert "does not offer STARTTLS" in ev[0]["text"] and "no AUTH" in ev[0]["text"]
    assert len(h.queue_ids()) == 1 and not h.events_with(2031)


def test_branch_tls_settings_checked(daemon, tmp_path, run_cli):
    for bad, why in (("atrn_tls = sometimes", "not none, opportunistic or required"),
                     ("atrn_fingerprint = sha256:abcd", "64 hex digits"),
                     ("atrn_ca = %s" % (tmp_path / "missing.pem"), "cannot open")):
        cfg = tmp_path / "bad.conf"
        cfg.write_text("[session]\nretrieve = none\n%s\n" % bad)
        r = run_cli("check-config", "--config", str(cfg))
        assert r.returncode != 0 and why in r.stdout + r.stderr, (bad, r.stdout, r.stderr)


# --- the hub's name resolved by c-ares (dns_servers), not the system resolver ----


def test_branch_resolves_atrn_host_with_dns_servers(daemon, tmp_path, pki, dns):
    d = dns("--host-record=hub.%s,127.0.0.1" % ZONE)
    h = tls_hub(daemon, tmp_path, pki)
    bodies = held_for_branch(h)
    # The certificate's name is checked against the name asked for.
    br = branch(daemon, tmp_path, "hub.%s:%d" % (ZONE, h.odmr_port), "atrn_tls = required",
                "atrn_ca = %s" % pki["ca"], top=["dns_servers = 127.0.0.1:%d" % d.port])
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_arrived(br, bodies)
    assert "hub.%s" % ZONE in d.queries(), d.queries()
    assert "certificate verified" in tls_steps(br)[0]
    # A name the DNS server does not know: the cause in words, nothing sent.
    nx = branch(daemon, tmp_path, "nohub.%s:%d" % (ZONE, h.odmr_port),
                top=["dns_servers = 127.0.0.1:%d" % d.port])
    dial(nx)
    ev = nx.wait_event(4121, 10)
    assert ev and "cannot resolve nohub.%s" % ZONE in ev[0]["text"], nx.events()
    assert "nohub.%s" % ZONE in d.queries()


# --- QUIT after a refused ATRN reaches the hub, plain or TLS ---------------------


class ScriptedHub:
    """An ODMR port played by the test: offers CRAM-MD5 (and STARTTLS with a
    certificate), accepts any AUTH, refuses ATRN with 450 and records every
    command line it receives, in clear (after TLS: decrypted)."""

    def __init__(self, cert=None):
        self.cert = cert
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.ls.settimeout(20)
        self.port = self.ls.getsockname()[1]
        self.lines = []
        self.done = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        try:
            c, _ = self.ls.accept()
            c.settimeout(10)
            self.serve(c)
        except OSError as e:
            self.lines.append("error: %s" % e)
        finally:
            self.done.set()

    def serve(self, c):
        f = c.makefile("rb")
        c.sendall(b"220 hub.test ESMTP scripted\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode().rstrip("\r\n")
            self.lines.append(cmd)
            verb = cmd.split(" ")[0].upper()
            if verb == "EHLO":
                tls = b"250-STARTTLS\r\n" if self.cert and not isinstance(c, ssl.SSLSocket) else b""
                c.sendall(b"250-hub.test\r\n" + tls + b"250-AUTH CRAM-MD5 PLAIN\r\n250 ATRN\r\n")
            elif verb == "STARTTLS":
                c.sendall(b"220 go ahead\r\n")
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(str(self.cert["cert"]), str(self.cert["key"]))
                c = ctx.wrap_socket(c, server_side=True)
                f = c.makefile("rb")
            elif verb == "AUTH":
                c.sendall(b"235 2.7.0 ok\r\n")
            elif verb == "ATRN":
                c.sendall(b"450 4.7.1 ATRN request refused (scripted)\r\n")
            elif verb == "QUIT":
                c.sendall(b"221 bye\r\n")
                c.close()
                return
            else:
                c.sendall(b"502 no\r\n")

    def stop(self):
        self.ls.close()


@pytest.mark.parametrize("with_tls", [False, True])
def test_branch_sends_quit_after_refused_atrn(daemon, tmp_path, pki, with_tls):
    sh = ScriptedHub(pki if with_tls else None)
    try:
        extra = ["atrn_ca = %s" % pki["ca"], "atrn_tls = required"] if with_tls else []
        br = branch(daemon, tmp_path, "127.0.0.1:%d" % sh.port, *extra)
        dial(br)
        ev = br.wait_event(4121, 10)
        assert ev and "450" in ev[0]["text"], br.events()
        assert sh.done.wait(10), sh.lines
        verbs = [ln.split(" ")[0].upper() for ln in sh.lines]
        want = ["EHLO", "STARTTLS", "EHLO", "AUTH", "ATRN", "QUIT"] if with_tls \
            else ["EHLO", "AUTH", "ATRN", "QUIT"]
        # CRAM-MD5 sends its answer as a line of its own without TLS
        assert [v for v in verbs if v in ("EHLO", "STARTTLS", "AUTH", "ATRN", "QUIT")] == want, \
            sh.lines
        assert sh.lines[-1] == "QUIT"
    finally:
        sh.stop()
