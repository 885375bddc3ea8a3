# The `make run` demo (scripts/demo with etc/demo.conf): started in a temporary
# directory on free ports with a short schedule, it must dial modemsim
# through the scripted failures, deliver the demo's first message and a
# message sent over SMTP to the ISP sink through the call, hang up, and
# record it all in the ledger; SIGINT (Ctrl-C) and SIGTERM stop everything it
# started. Invariant: the script is stopped by its PID, and the test checks by
# PID (the demo's pids file) and by the state directory that nothing is left.
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import free_port, message, send_message, wait_until

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo"


def have_aiosmtpd():
    return subprocess.run(["/usr/bin/python3", "-c", "import aiosmtpd"],
                          capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.skipif(not (REPO / "build" / "modemsim").exists(), reason="make all first"),
    pytest.mark.skipif(not have_aiosmtpd(), reason="python3-aiosmtpd is not installed"),
]


def ledger(dir):
    path = dir / "log" / "sessions.jsonl"
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path("/proc/%d/stat" % pid)
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


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


class Demo:
    def __init__(self, tmp, *args):
        self.dir = tmp / "run"
        self.smtp = free_port()
        self.out = open(tmp / "demo.out", "w+")
        env = dict(os.environ, BUILD=str(Path(os.environ.get(
            "DIALMAIL_BIN", REPO / "build" / "dialmail")).parent))
        self.proc = subprocess.Popen(
            [str(DEMO), "--dir", str(self.dir), "--smtp-port", str(self.smtp),
             "--isp-port", str(free_port()), "--gateway-port", str(free_port()), *args],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT, cwd=str(tmp),
            env=env, start_new_session=True)

    def output(self):
        self.out.seek(0)
        return self.out.read()

    def pids(self):
        f = self.dir / "demo" / "pids"
        return {l.split()[0]: int(l.split()[1]) for l in f.read_text().splitlines()} \
            if f.exists() else {}

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                raise AssertionError("the demo did not stop on %s" % sig)
        return self.proc.returncode


@pytest.fixture
def demo(tmp_path):
    started = []

    def make(*args):
        d = Demo(tmp_path, *args)
        started.append(d)
        return d

    yield make
    for d in started:
        pids = d.pids()
        if d.proc.poll() is None:
            try:
                d.stop()
            except AssertionError:
                pass
        for pid in pids.values():  # never leave one behind, even on failure
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_demo_session_dials_delivers_hangs_up_and_stops_cleanly(demo):
    d = demo("--schedule", "every 20s")
    assert wait_until(lambda: len(d.pids()) == 3 and (d.dir / "control.sock").exists(), 15), \
        d.output()
    pids = d.pids()
    assert set(pids) == {"isp", "modemsim", "dialmail"}
    assert wait_until(lambda: "swaks --server 127.0.0.1:%d" % d.smtp in d.output(), 10), \
        d.output()
    # Mail over SMTP on the demo's port, for a domain behind the ISP.
    r = send_message(d.smtp, "me@localhost", ["friend@example.net"], message("from swaks"))
    assert r.code == 250, r
    assert wait_until(lambda: any(s["result"] == "ok" for s in ledger(d.dir)), 75, 0.5), \
        (ledger(d.dir), d.output())
    s = [s for s in ledger(d.dir) if s["result"] == "ok"][0]
    assert s["reason"] in ("scheduled", "catch-up") and s["entry"] == "isp"
    # The scripted failures came first, each one with its cause.
    assert [a["cause"] for a in s["attempts"]][:3] == ["busy", "no-carrier", "connected"]
    assert s["hangup_reason"] == "idle" and s["messages_out"] == 2, s
    # Both messages reached the ISP's Maildir through the call.
    new = d.dir / "isp" / "Maildir" / "new"
    got = b"".join(f.read_bytes() for f in new.iterdir())
    assert b"Subject: from swaks" in got and b"Subject: dialmail demo" in got
    assert len(list(new.iterdir())) == 2
    tr = (d.dir / "demo" / "modem.transcript").read_text()
    assert "-> BUSY" in tr and "-> NO CARRIER" in tr and "-> CONNECT 33600" in tr
    assert "gateway connection" in tr and "hangup reason=dtr" in tr
    ev = subprocess.run([str(REPO / "build" / "dialmail"), "events", "--dir", str(d.dir),
                         "--category", "dialup"], capture_output=True, text=True, timeout=20)
    assert "BUSY" in ev.stdout and "hung up" in ev.stdout, ev.stdout
    # Ctrl-C: the three processes are gone, and nothing else runs in the dir.
    assert d.stop(signal.SIGINT) == 0, d.output()
    assert wait_until(lambda: not any(alive(p) for p in pids.values()), 5), pids
    assert processes_using(d.dir) == []
    assert not (d.dir / "ttyMODEM").exists() and not (d.dir / "demo" / "pids").exists()
    assert "demo: stopped" in d.output()


def test_demo_sigterm_stops_everything_before_any_session(demo):
    d = demo()  # etc/demo.conf's own schedule: no slot comes in this test
    assert wait_until(lambda: len(d.pids()) == 3, 15), d.output()
    pids = d.pids()
    time.sleep(0.5)
    assert d.stop(signal.SIGTERM) == 0
    assert wait_until(lambda: not any(alive(p) for p in pids.values()), 5), pids
    assert processes_using(d.dir) == []
