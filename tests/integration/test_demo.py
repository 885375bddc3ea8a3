# The `make run` demo (scripts/demo with etc/demo.conf and etc/demo-hub.conf):
# started in a temporary directory on free ports with a short schedule, it
# must dial modemsim through the scripted failures (the call rings the hub's
# modemsim, which the hub answers), and on the call send the
# branch's mail to the hub over the line (it lands in the hub's Maildir) and
# collect with ATRN the mail the hub held for the branch (it lands in the
# branch's Maildir), then record it in the ledger; SIGINT (Ctrl-C) and SIGTERM
# stop everything it started. Invariant: the script is stopped by its PID, and
# the test checks by PID (the demo's pids file) and by the state directory
# that nothing is left.
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from demo import alive
from smtpraw import message, send_message
from wait import wait_until

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.skipif(not (REPO / "build" / "modemsim").exists(),
                                reason="make all first")


def ledger(dir):
    path = dir / "log" / "sessions.jsonl"
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def processes_using(dir):
    """PIDs whose command line mentions dir (to check nothing is left)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                if str(dir).encode() in (p / "cmdline").read_bytes():
                    out.append(int(p.name))
            except OSError:
                pass
    return [p for p in out if alive(p)]


def maildir(path):
    new = path / "Maildir" / "new"
    return [f.read_bytes() for f in new.iterdir()] if new.is_dir() else []


def queued(dir):
    q = dir / "queue"
    return [f.name for f in q.iterdir()] if q.is_dir() else []


def test_demo_call_carries_mail_both_ways_and_stops_cleanly(demo):
    d = demo("--schedule", "every 20s")
    hub = d.dir / "hub"
    assert wait_until(lambda: len(d.pids()) == 4 and (d.dir / "control.sock").exists(), 15), \
        d.output()
    pids = d.pids()
    assert set(pids) == {"hub-modem", "hub", "modemsim", "dialmail"}
    assert wait_until(lambda: "swaks --server 127.0.0.1:%d" % d.smtp in d.output(), 10), \
        d.output()
    assert "status  http://127.0.0.1:%d/" % d.http in d.output()
    # The credentials the script wrote are for their owner only.
    for f in (hub / "users", d.dir / "demo" / "auth"):
        assert f.stat().st_mode & 0o077 == 0, f
    # Mail over SMTP on the branch's port, for the hub's user.
    r = send_message(d.smtp, "me@localhost", ["friend@hub.example"], message("from swaks"))
    assert r.code == 250, r
    # Branch -> hub: the demo's message and the one above land in the hub's
    # Maildir; hub -> branch: the held message lands in the branch's.
    assert wait_until(lambda: len(maildir(hub / "mail" / "friend")) == 2
                      and len(maildir(d.dir / "mail" / "bob")) == 1, 90, 0.5), \
        (ledger(d.dir), d.output())
    at_hub = b"".join(maildir(hub / "mail" / "friend"))
    assert b"Subject: from swaks" in at_hub
    assert b"Subject: dialmail demo: from the branch" in at_hub
    at_branch = maildir(d.dir / "mail" / "bob")[0]
    assert b"Subject: dialmail demo: held at the hub" in at_branch
    assert b"Delivered-To: bob@branch.example" in at_branch
    assert wait_until(lambda: queued(d.dir) == [] and queued(hub) == [], 10), \
        (queued(d.dir), queued(hub))
    def carried():
        led = ledger(d.dir)
        return (sum(x.get("messages_out", 0) for x in led),
                sum(x.get("messages_in", 0) for x in led))
    # The ledger line is written at hang-up, after the mail arrived.
    assert wait_until(lambda: carried() == (2, 1), 30, 0.5), ledger(d.dir)
    # The first session: the scripted failures first, each with its cause,
    # then one call carrying mail both ways.
    led = ledger(d.dir)
    s = led[0]
    assert s["result"] == "ok" and s["entry"] == "hub", led
    assert s["reason"] in ("scheduled", "catch-up"), s
    assert [a["cause"] for a in s["attempts"]][:3] == ["busy", "no-carrier", "connected"]
    assert s["messages_in"] == 1 and s["messages_out"] >= 1, s
    assert "QUIT" in s["hangup_reason"], s
    tr = (d.dir / "demo" / "modem.transcript").read_text()
    assert "-> BUSY" in tr and "-> NO CARRIER" in tr and "-> CONNECT 33600" in tr
    assert "hangup reason=" in tr
    dm = str(REPO / "build" / "dialmail")
    ev = subprocess.run([dm, "events", "--dir", str(d.dir), "--category", "dialup"],
                        capture_output=True, text=True, timeout=20)
    assert "BUSY" in ev.stdout and "SMTP over the line" in ev.stdout, ev.stdout
    # The hub answered the call on its modem (4131) and reversed the line
    # for the branch's ATRN (2031).
    for ev_id in ("4131", "2031"):
        ev = subprocess.run([dm, "events", "--dir", str(hub), "--id", ev_id, "--json"],
                            capture_output=True, text=True, timeout=20)
        assert ev.returncode == 0 and ev.stdout.strip(), ev_id + ev.stdout + ev.stderr
    htr = (d.dir / "demo" / "hub-modem.transcript").read_text()
    assert "answered after 2 rings -> CONNECT 33600" in htr, htr
    # Ctrl-C: the three processes are gone, and nothing else runs in the dir.
    assert d.stop(signal.SIGINT) == 0, d.output()
    assert wait_until(lambda: not any(alive(p) for p in pids.values()), 5), pids
    assert processes_using(d.dir) == []
    assert not (d.dir / "ttyMODEM").exists() and not (d.dir / "ttyHUB").exists()
    assert not (d.dir / "demo" / "pids").exists()
    assert "demo: stopped" in d.output()


def test_demo_sigterm_stops_everything_before_any_session(demo):
    d = demo()  # etc/demo.conf's own schedule: no slot comes in this test
    assert wait_until(lambda: len(d.pids()) == 4, 15), d.output()
    pids = d.pids()
    time.sleep(0.5)
    assert d.stop(signal.SIGTERM) == 0
    assert wait_until(lambda: not any(alive(p) for p in pids.values()), 5), pids
    assert processes_using(d.dir) == []
