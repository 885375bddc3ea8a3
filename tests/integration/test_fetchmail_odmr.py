# fetchmail in ODMR mode (`proto ODMR`, RFC 2645) against the dialmail hub:
# fetchmail authenticates on the hub's ODMR port, sends ATRN for its
# fetchdomains, and relays the reversed session to its smtphost (here the
# SMTP recorder). Held mail arrives there byte-exact; a wrong password or a
# domain the user does not own is refused and nothing leaves the hub.
# fetchmail runs with a private rc file and FETCHMAILHOME, numeric addresses
# only (no DNS); every process is stopped by PID, every wait is bounded.
import os
import shutil
import subprocess

import pytest

from odmr import PASSWORD, USER, hub
from smtpraw import message, send_message
from wait import wait_until

FETCHMAIL = shutil.which("fetchmail")
pytestmark = pytest.mark.skipif(FETCHMAIL is None, reason="fetchmail not installed "
                                "(scripts/install-deps)")


def fetchmail(tmp_path, odmr_port, smtp_port, password=PASSWORD, domains="branch.example"):
    home = tmp_path / "fmhome"
    home.mkdir(exist_ok=True)
    rc = home / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        "poll 127.0.0.1 port %d proto ODMR auth password\n"
        "  user \"%s\" password \"%s\"\n"
        "  fetchdomains %s\n"
        "  smtphost 127.0.0.1/%d\n"
        "  sslproto ''\n" % (odmr_port, USER, password, domains, smtp_port))
    rc.chmod(0o600)
    env = dict(os.environ, FETCHMAILHOME=str(home), HOME=str(home))
    return subprocess.run([FETCHMAIL, "-f", str(rc), "--nodetach", "-v", "--norewrite"],
                          capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)


def test_fetchmail_odmr_gets_held_mail(daemon, tmp_path, rec):
    h = hub(daemon, tmp_path)
    bodies = [message("for fetchmail %d" % i, body="body %d\r\n..dot" % i) for i in range(2)]
    for b in bodies:
        assert send_message(h.port, "s@sender.example", ["bob@branch.example"], b).code == 250
    r = fetchmail(tmp_path, h.odmr_port, rec.port)
    out = r.stdout + r.stderr
    assert "ATRN branch.example" in out, out
    assert wait_until(lambda: sum(len(s.messages) for s in rec.sessions) == 2, 10), out
    got = sorted(m.data for s in rec.sessions for m in s.messages)
    for b in bodies:
        want = b.replace(b"\r\n..", b"\r\n.")
        hits = [g for g in got if g.endswith(want)]
        assert len(hits) == 1 and hits[0].startswith(b"Received: "), (want, got)
    assert all(m.rcpts == ["bob@branch.example"] for s in rec.sessions for m in s.messages)
    assert wait_until(lambda: h.queue_ids() == [], 5), h.queue_ids()
    ev = h.wait_event(2031)
    assert ev and ev[0]["user"] == USER, ev
    assert "2 delivered" in h.wait_event(3031)[0]["text"]


def test_fetchmail_wrong_password_or_foreign_domain(daemon, tmp_path, rec):
    h = hub(daemon, tmp_path)
    assert send_message(h.port, "s@sender.example", ["bob@branch.example"],
                        message("stays")).code == 250
    assert send_message(h.port, "s@sender.example", ["x@other.example"],
                        message("bob's")).code == 250
    r = fetchmail(tmp_path, h.odmr_port, rec.port, password="wrong")
    assert r.returncode != 0
    assert "535" in r.stdout + r.stderr or "uthentication" in r.stdout + r.stderr, \
        r.stdout + r.stderr
    assert h.events_with(4196)  # AUTH failed
    r = fetchmail(tmp_path, h.odmr_port, rec.port, domains="other.example")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "450" in out, out
    ev = h.events_with(4199)
    assert ev and "other.example" in ev[0]["domains"], ev
    assert rec.sessions == [] and len(h.queue_ids()) == 2
