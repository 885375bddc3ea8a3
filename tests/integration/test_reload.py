# SIGHUP, `dialmail reload` and `dialmail reopen-logs`: the daemon keeps
# running, opens its event and tracking logs again (so logrotate's rename
# then HUP moves writing to new files), reads its configuration file again
# (a bad one is refused with file:line and the running one stays; what only
# a restart can change is named; a dial-up call in progress finishes first)
# and loads its TLS certificate again for new STARTTLS sessions; a broken
# new key is refused and the old certificate stays, with the reason in the
# event log.
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest

from daemon import write_config
from dialup import MODEMSIM, ledger
from smtpraw import SmtpRaw, message
from wait import wait_until

CONF = ("mynetworks = 192.0.2.0/24", "local_domains = example.org",
        "local_recipients = alice")
SAME = "configuration reloaded, no setting changed"


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
    assert ev[-1]["text"] == "logs reopened; " + SAME, ev
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
    # the new file is opened before the reload's event 1008 is written to it
    assert wait_until(lambda: (log / "events.jsonl").exists() and d.events_with(1008), 5.0), \
        d.events()
    old_ev = (log / "events.jsonl.1").stat().st_size
    old_tr = (log / "tracking.log.1").stat().st_size
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
    assert ev[-1]["text"] == "logs reopened; %s; TLS certificate reloaded" % SAME, ev
    assert served_cert(d.port) == der(certs["b"]["cert"])


def test_reload_command_reloads_the_certificate(daemon, certs):
    d = daemon(*tls_conf(certs["live"]))
    install(certs["b"], certs["live"])
    r = d.cli("reload", "--dir", str(d.dir))
    assert r.stdout == "reload: logs reopened; %s; TLS certificate reloaded\n" % SAME, r.stdout
    assert served_cert(d.port) == der(certs["b"]["cert"])


def test_broken_new_key_keeps_the_old_certificate(daemon, certs):
    d = daemon(*tls_conf(certs["live"]))
    install(certs["b"], certs["live"])
    certs["live"]["key"].write_text("-----BEGIN PRIVATE KEY-----\nbroken\n"
                                    "-----END PRIVATE KEY-----\n")
    hup(d)
    ev = reloads(d, 1009, 1)[-1]
    # The configuration names the key too: the file is refused as a whole.
    assert ev["text"].startswith("logs reopened; configuration refused, the running one "
                                 "stays: "), ev
    assert "; TLS reload failed: %s: tls_key_file: " % certs["live"]["key"] in ev["text"], ev
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


# --- the configuration file read again ------------------------------------

def rcpt_code(port, rcpt):
    with SmtpRaw(port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<s@client.test>").code == 250
        return c.cmd("RCPT TO:<%s>" % rcpt).code


def rewrite(d, *lines):
    write_config(d.config, d.port, lines)


def test_reload_applies_a_changed_setting(daemon):
    d = daemon(*CONF)
    assert rcpt_code(d.port, "bob@example.org") == 550
    rewrite(d, *CONF[:2], "local_recipients = alice, bob")
    r = d.cli("reload", "--dir", str(d.dir))
    assert r.stdout == ("reload: logs reopened; configuration reloaded, changed: "
                        "local_recipients\n"), r.stdout
    assert rcpt_code(d.port, "bob@example.org") == 250
    assert rcpt_code(d.port, "alice@example.org") == 250


def test_reload_refuses_a_bad_file_and_keeps_the_running_one(daemon):
    d = daemon(*CONF)
    rewrite(d, *CONF[:2], "local_recipients = alice, bob", "max_message_size = lots")
    bad_line = d.config.read_text().splitlines().index("max_message_size = lots") + 1
    r = d.cli("reload", "--dir", str(d.dir), check=False)
    assert r.returncode == 70, r
    assert "configuration refused, the running one stays: %s:%d: max_message_size" \
        % (d.config, bad_line) in r.stderr, r.stderr
    ev = reloads(d, 1009, 1)[-1]
    assert "%s:%d:" % (d.config, bad_line) in ev["text"], ev
    assert d.alive()
    assert rcpt_code(d.port, "bob@example.org") == 550  # the old recipients still
    assert rcpt_code(d.port, "alice@example.org") == 250


def test_reload_names_what_needs_a_restart(daemon):
    d = daemon(*CONF)
    other = d.port + 1 if d.port < 65535 else d.port - 1
    rewrite(d, "listen = 127.0.0.1:%d" % other, *CONF[:2], "local_recipients = alice, bob")
    r = d.cli("reload", "--dir", str(d.dir))
    assert r.stdout == ("reload: logs reopened; configuration reloaded, changed: "
                        "local_recipients; needs a restart to change: listen\n"), r.stdout
    assert rcpt_code(d.port, "bob@example.org") == 250  # the old port, the new list
    r = d.cli("reload", "--dir", str(d.dir))
    assert "needs a restart to change: listen" in r.stdout, r.stdout


@pytest.mark.skipif(not MODEMSIM.exists(), reason="make build/modemsim first")
def test_reload_and_log_rotation_during_a_live_call(daemon, rig, certs):
    """A call is on the line (modemsim answers after 3 s); the logs are
    rotated, a renewed certificate installed and the configuration reloaded
    meanwhile: the call completes and delivers, the new certificate is
    served at once, the new configuration is in force once the call has
    ended and not before, and the records go to the new log files."""
    link, gw = rig.modem("modem0", "--connect-delay", "3")
    lines = rig.config(rig.entry("isp", link, dial_timeout="20s"),
                       routes=["example.net = smarthost 127.0.0.1:%d via=isp tls=none" % gw],
                       main=("mynetworks = 127.0.0.0/8",) + tls_conf(certs["live"])[1:])
    d = daemon(*lines)
    r = d.send("s@client.test", ["far@example.net"], message("during the call"))
    assert r.code == 250, r
    call = subprocess.Popen([d.bin, "dial", "--dir", str(d.dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        # dialing: the 3 s before CONNECT are the window
        assert wait_until(lambda: d.events_with(4100), 10), d.events()
        log = d.dir / "log"
        os.rename(log / "events.jsonl", log / "events.jsonl.1")
        os.rename(log / "tracking.log", log / "tracking.log.1")
        rewrite(d, *[ln if ln != "local_recipients = alice" else "local_recipients = alice, bob"
                     for ln in lines])
        install(certs["b"], certs["live"])
        r = d.cli("reload", "--dir", str(d.dir))
        assert r.stdout == ("reload: logs reopened; configuration reloaded, changed: "
                            "local_recipients; in force when the session in progress ends; "
                            "TLS certificate reloaded\n"), r.stdout
        assert served_cert(d.port) == der(certs["b"]["cert"])
        assert rcpt_code(d.port, "bob@example.org") == 550  # not while the call is up
        out, _ = call.communicate(timeout=60)
    finally:
        if call.poll() is None:
            call.kill()
            call.wait(10)
    assert call.returncode == 0, out
    assert "delivered 1/1" in out, out
    assert ledger(d)[-1]["result"] == "ok", ledger(d)
    msgs = [m for s in rig.rec.sessions for m in s.messages]
    assert len(msgs) == 1 and b"Subject: during the call" in msgs[0].data
    assert wait_until(lambda: rcpt_code(d.port, "bob@example.org") == 250, 5)
    assert (d.dir / "log" / "events.jsonl").exists()
    assert any(e["id"] == 1008 for e in d.events())  # in the new file
