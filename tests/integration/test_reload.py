# SIGHUP, `dialmail reload` and `dialmail reopen-logs`: the daemon keeps
# running, opens its event and tracking logs again (so logrotate's rename
# then HUP moves writing to new files) and loads its TLS certificate again
# for new STARTTLS sessions; a broken new key is refused and the old
# certificate stays, with the reason in the event log.
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest

from smtpraw import message
from wait import wait_until

CONF = ("mynetworks = 192.0.2.0/24", "local_domains = example.org",
        "local_recipients = alice")


def make_cert(dir, cn):
    """A self-signed certificate and key for localhost, told apart by cn."""
    dir.mkdir(exist_ok=True)
    cert, key = dir / "cert.pem", dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return {"cert": cert, "key": key}


@pytest.fixture
def certs(tmp_path):
    """Certificates A and B, and the files the daemon reads (A at first)."""
    a, b = make_cert(tmp_path / "a", "cert-a"), make_cert(tmp_path / "b", "cert-b")
    live = {"cert": tmp_path / "live-cert.pem", "key": tmp_path / "live-key.pem"}
    install(a, live)
    return {"a": a, "b": b, "live": live}


def install(src, live):
    """Replaces the live files with src's, as a renewal does (rename)."""
    for k in ("cert", "key"):
        tmp = Path(str(live[k]) + ".new")
        shutil.copyfile(src[k], tmp)
        tmp.chmod(0o600)
        os.replace(tmp, live[k])


def der(pem_path):
    return ssl.PEM_cert_to_DER_cert(pem_path.read_text())


def served_cert(port):
    """The certificate a new STARTTLS session on port presents (DER)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.test")
        s.starttls(context=ctx)
        return s.sock.getpeercert(binary_form=True)


def hup(d):
    d.proc.send_signal(signal.SIGHUP)


def reloads(d, ev_id, n):
    """Waits for the n-th event ev_id (1008 reloaded / 1009 reload-failed)."""
    return wait_until(lambda: len(d.events_with(ev_id)) >= n and d.events_with(ev_id), 5.0)


def test_sighup_keeps_the_daemon_serving(daemon):
    d = daemon(*CONF)
    hup(d)
    ev = reloads(d, 1008, 1)
    assert ev[-1]["text"] == "logs reopened", ev
    assert d.alive()
    r = d.send("s@client.test", ["alice@example.org"], message("after-hup"))
    assert r.code == 250, r
    hup(d)
    reloads(d, 1008, 2)
    assert d.alive()


def rotate_and_check(d, reopen):
    """Renames the logs away, runs reopen, sends a message: the new files
    get the message's records, the old ones do not grow."""
    log = d.dir / "log"
    os.rename(log / "events.jsonl", log / "events.jsonl.1")
    os.rename(log / "tracking.log", log / "tracking.log.1")
    reopen()
    assert wait_until(lambda: (log / "events.jsonl").exists(), 5.0)
    old_ev = (log / "events.jsonl.1").stat().st_size
    old_tr = (log / "tracking.log.1").stat().st_size
    assert d.events_with(1008), d.events()
    r = d.send("s@client.test", ["alice@example.org"], message("rotated"))
    assert r.code == 250, r
    assert d.wait_event(2002)
    assert wait_until(lambda: d.tracking(), 5.0)
    assert (log / "events.jsonl.1").stat().st_size == old_ev
    assert (log / "tracking.log.1").stat().st_size == old_tr
    assert d.alive()


def test_sighup_after_rename_writes_new_logs(daemon):
    d = daemon(*CONF)
    rotate_and_check(d, lambda: hup(d))


def test_reopen_logs_command_writes_new_logs(daemon):
    d = daemon(*CONF)

    def reopen():
        r = d.cli("reopen-logs", "--dir", str(d.dir))
        assert r.stdout == "reopen-logs: logs reopened\n", r.stdout
    rotate_and_check(d, reopen)


def test_reload_without_daemon_is_unavailable(daemon, tmp_path):
    d = daemon(*CONF, start=False)
    r = d.cli("reload", "--dir", str(tmp_path / "none"), check=False)
    assert r.returncode == 69, r
    assert "no daemon answers" in r.stderr


def tls_conf(live):
    return CONF + ("tls_cert_file = %s" % live["cert"], "tls_key_file = %s" % live["key"])


def test_sighup_reloads_the_certificate(daemon, certs):
    d = daemon(*tls_conf(certs["live"]))
    assert served_cert(d.port) == der(certs["a"]["cert"])
    install(certs["b"], certs["live"])
    assert served_cert(d.port) == der(certs["a"]["cert"])  # not before the HUP
    hup(d)
    ev = reloads(d, 1008, 1)
    assert ev[-1]["text"] == "logs reopened; TLS certificate reloaded", ev
    assert served_cert(d.port) == der(certs["b"]["cert"])


def test_reload_command_reloads_the_certificate(daemon, certs):
    d = daemon(*tls_conf(certs["live"]))
    install(certs["b"], certs["live"])
    r = d.cli("reload", "--dir", str(d.dir))
    assert r.stdout == "reload: logs reopened; TLS certificate reloaded\n", r.stdout
    assert served_cert(d.port) == der(certs["b"]["cert"])


def test_broken_new_key_keeps_the_old_certificate(daemon, certs):
    d = daemon(*tls_conf(certs["live"]))
    install(certs["b"], certs["live"])
    certs["live"]["key"].write_text("-----BEGIN PRIVATE KEY-----\nbroken\n"
                                    "-----END PRIVATE KEY-----\n")
    hup(d)
    ev = reloads(d, 1009, 1)[-1]
    assert ev["text"].startswith("logs reopened; TLS reload failed: %s: tls_key_file: "
                                 % certs["live"]["key"]), ev
    assert ev["text"].endswith(", the old one stays"), ev
    assert ev["severity"] == "warning", ev
    assert d.alive()
    assert served_cert(d.port) == der(certs["a"]["cert"])
    r = d.cli("reload", "--dir", str(d.dir), check=False)
    assert r.returncode == 70 and "TLS reload failed" in r.stderr, r
    # the key of A does not match certificate B: refused too
    shutil.copyfile(certs["a"]["key"], certs["live"]["key"])
    hup(d)
    ev = reloads(d, 1009, 3)[-1]
    assert "tls_key_file" in ev["text"] and "TLS reload failed" in ev["text"], ev
    assert served_cert(d.port) == der(certs["a"]["cert"])


@pytest.mark.parametrize("cmd", ["reload", "reopen-logs"])
def test_help_is_usage_on_stdout(run_cli, cmd):
    r = run_cli(cmd, "--help")
    assert r.returncode == 0 and r.stdout == "usage: dialmail %s [--dir DIR]\n" % cmd, r
