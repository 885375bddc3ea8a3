# Sessions over the other data phases: `data = ppp` with a pppd stand-in on
# the modemsim line (exit statuses mapped to causes: 19 authentication
# failure is not redialled, 16 modem hang-up is; success is the ip-up file),
# and `type = command` whose up/down/check commands bring a veth pair
# between two network namespaces up and down, with the smarthost inside the
# far namespace. Everything goes through the daemon and `dialmail dial`.
# Invariant: every process is stopped by its PID and every namespace is
# deleted in a finalizer; every wait is bounded.
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dialup import MODEMSIM, dial, ledger_at as ledger  # ledger(state dir)
from modem import ModemSim
from ports import free_port
from smtp_recorder import Recorder
from smtpraw import message
from wait import wait_until

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "tests" / "lib"  # smtp_recorder.py, for the sink below


def events(dir):
    path = Path(dir) / "log" / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def check_4106(evs):
    for e in evs:
        if e["id"] == 4106:
            assert e["cause"] and e["class"], e
            assert re.search(r"attempt \d+ of \d+: [A-Za-z]", e["text"]), e["text"]
            assert not re.search(r"\[\d+\]", e["text"]), e["text"]


# --- data = ppp ---------------------------------------------------------------

# Behaves as pppd does for dialmail: gets the connected tty as stdin/stdout
# and "nodetach OPTIONS ipparam UPFILE"; each run takes the next exit status
# from $0.codes ("up" = touch UPFILE as an ip-up script would, then stay until
# stopped). Each run logs its pid, and "stopped" when it is terminated.
PPPD = """#!/bin/sh
up=""
for a in "$@"; do [ "$prev" = ipparam ] && up="$a"; prev="$a"; done
codes=$(cat "$0.codes")
first=${codes%%,*}
rest=${codes#*,}; [ "$rest" = "$codes" ] && rest=up
echo "$rest" > "$0.codes"
echo "run $$ $*" >> "$0.runs"
if [ "$first" = up ]; then
    trap 'echo "stopped $$" >> "$0.runs"; exit 5' TERM
    touch "$up"
    i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
    exit 0
fi
exit "$first"
"""


class PppRig:
    def __init__(self, tmp):
        self.tmp = tmp
        (tmp / "lock").mkdir()
        self.rec = Recorder(extensions=("PIPELINING", "8BITMIME"))
        self.rec_port = self.rec.start()
        self.gw = free_port()
        self.sim = None
        self.pppd = tmp / "pppd-standin"
        self.pppd.write_text(PPPD)
        self.pppd.chmod(0o755)
        self.up = tmp / "ppp-up"

    def modem(self, *args):
        self.sim = ModemSim(MODEMSIM, self.tmp / "modem0", *args, "--gateway-port",
                            str(self.gw), "--connect", "127.0.0.1:%d" % self.rec_port)
        self.sim.start()

    def codes(self, codes):
        Path(str(self.pppd) + ".codes").write_text(codes)

    def runs(self):
        p = Path(str(self.pppd) + ".runs")
        return p.read_text().splitlines() if p.exists() else []

    def config(self, numbers="5551234", session=(), idle="1s"):
        return ["lock_dir = %s" % (self.tmp / "lock"), "queue_run_interval = 1s",
                "[routes]", "example.org = smarthost 127.0.0.1:%d via=isp tls=none" % self.gw,
                "[phonebook isp]", "device = %s" % self.sim.link, "numbers = %s" % numbers,
                "redial_interval = 200ms", "at_timeout = 1s", "dial_timeout = 5s",
                "data = ppp", "pppd = %s" % self.pppd, "ppp_options = noauth user dialmail",
                "ppp_up_file = %s" % self.up, "up_timeout = 5s",
                "[session]", "idle_timeout = %s" % idle, "check_timeout = 3s", *session]

    def stop(self):
        if self.sim:
            self.sim.stop()
        self.rec.stop()


@pytest.fixture
def ppp(tmp_path):
    if not MODEMSIM.exists():
        pytest.skip("make build/modemsim first")
    r = PppRig(tmp_path)
    yield r
    r.stop()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path("/proc/%d/stat" % pid).exists() and \
        Path("/proc/%d/stat" % pid).read_text().split()[2] != "Z"


def test_ppp_session_delivers_and_stops_pppd_at_hangup(daemon, ppp):
    ppp.modem()
    ppp.codes("up")
    d = daemon(*ppp.config())
    assert d.send("a@client.test", ["x@example.org"], message("over ppp")).code == 250
    r = dial(d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "delivered 1/1" in r.stdout and "hung up: done" in r.stdout, r.stdout
    # pppd got the line and the entry's options, signalled up, and was
    # stopped at hang-up.
    runs = ppp.runs()
    assert len(runs) == 2 and runs[1] == "stopped " + runs[0].split()[1], runs
    assert "nodetach" in runs[0] and "noauth user dialmail" in runs[0]
    assert "ipparam %s" % ppp.up in runs[0]
    assert not pid_alive(int(runs[0].split()[1]))
    up = d.events_with(4101)
    assert up and "data phase ppp" in up[0]["text"]
    s = ledger(d.dir)[0]
    assert s["result"] == "ok" and s["messages_out"] == 1
    assert [a["cause"] for a in s["attempts"]] == ["connected"]
    msgs = [m for x in ppp.rec.sessions for m in x.messages]
    assert len(msgs) == 1 and b"Subject: over ppp" in msgs[0].data
    # The call went through modemsim and was hung up by the DTR drop.
    assert ppp.sim.wait_transcript(r"call 1 hangup reason=dtr")


def test_ppp_auth_failure_is_not_hammered(daemon, ppp):
    ppp.modem()
    ppp.codes("19")
    d = daemon(*ppp.config(numbers="5551234, 5559876", session=["session_window = 20s"]))
    t0 = time.monotonic()
    r = dial(d)
    assert r.returncode != 0, r.stdout
    # One pppd run, one failed attempt; the entry is dropped for the window
    # (no redial, no second number, no second round) long before it closes.
    assert time.monotonic() - t0 < 10
    assert len(ppp.runs()) == 1, ppp.runs()
    f = d.events_with(4106)
    assert len(f) == 1 and f[0]["cause"] == "ppp-auth-failed", f
    assert f[0]["class"] == "configuration or credentials"
    assert "pppd exit status 19: authentication failed" in f[0]["text"], f[0]["text"]
    skipped = d.events_with(4104)
    assert len(skipped) == 1 and "authenticat" in skipped[0]["text"]
    assert "no entry left to try" in r.stdout, r.stdout
    s = ledger(d.dir)[0]
    assert s["result"] == "missed" and [a["cause"] for a in s["attempts"]] == ["ppp-auth-failed"]
    missed = d.events_with(4115)
    assert missed and "authentication failed" in missed[0]["text"]
    # Only one call was made: the modem was not dialled again.
    assert len(ppp.sim.wait_transcript(r"call \d+ dial ")) == 1
    check_4106(d.events())


def test_ppp_modem_hangup_redials_and_connects(daemon, ppp):
    ppp.modem()
    ppp.codes("16,up")
    d = daemon(*ppp.config())
    assert d.send("a@client.test", ["x@example.org"], message("after 16")).code == 250
    r = dial(d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "redialling" in r.stdout, r.stdout
    f = d.events_with(4106)
    assert len(f) == 1 and f[0]["cause"] == "ppp-modem-hangup" and f[0]["class"] == "transient"
    assert "exit status 16" in f[0]["text"] and "the modem hung up" in f[0]["text"]
    s = ledger(d.dir)[0]
    assert [(a["cause"], a["attempt"]) for a in s["attempts"]] == [
        ("ppp-modem-hangup", 1), ("connected", 2)]
    assert s["result"] == "ok" and s["messages_out"] == 1
    assert len(ppp.runs()) == 3  # failed run, good run, its stop
    # Two calls: the first hung up after pppd failed, the second carried the mail.
    assert ppp.sim.wait_transcript(r"call 2 dial 5551234 -> CONNECT")
    check_4106(d.events())


def test_pppd_dying_mid_session_is_link_lost(daemon, ppp):
    ppp.modem()
    ppp.codes("up")
    d = daemon(*ppp.config(idle="30s", session=["hangup_when_done = no"]))
    p = subprocess.Popen([d.bin, "dial", "--dir", str(d.dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert d.wait_event(4113, 15), d.log_text()
        pid = int(ppp.runs()[0].split()[1])
        os.kill(pid, signal.SIGKILL)  # pppd gone: the link is gone
        out, _ = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    lost = d.events_with(4117)
    assert lost and lost[0]["cause"] == "ppp-killed", lost
    assert "carrier lost" in out, out
    assert ledger(d.dir)[0]["hangup_reason"] == "carrier lost"


# --- type = command: a veth pair between two network namespaces ------------------


def run(*cmd, check=True, timeout=20):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stderr))
    return r


def netns_permitted():
    if shutil.which("ip") is None:
        return False
    name = "dmprobe-%s" % uuid.uuid4().hex[:6]
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, timeout=10)
    if r.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    return True


# The smarthost inside the ISP namespace: the recorder on 192.0.2.2:25; each
# message's Message-ID is appended to a file as it arrives.
SINK = r"""
import socket, sys, threading, time
sys.path.insert(0, sys.argv[1])
import smtp_recorder as sr
class R(sr.Recorder):
    def start(self, port=0):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("192.0.2.2", port))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        t = threading.Thread(target=self.accept_loop, daemon=True)
        t.start()
        return port
rec = R(extensions=("PIPELINING", "8BITMIME"), max_session=600)
rec.start(25)
print("ready", flush=True)
seen = 0
while True:
    msgs = [m for s in list(rec.sessions) for m in list(s.messages)]
    with open(sys.argv[2], "a") as f:
        for m in msgs[seen:]:
            f.write(m.data.decode("latin-1").split("Subject: ", 1)[-1].split("\r\n", 1)[0] + "\n")
    seen = len(msgs)
    time.sleep(0.05)
"""


class NetnsRig:
    """Namespaces SITE (the daemon) and ISP (the smarthost), a veth pair
    between them: site side 192.0.2.1/24, ISP side 192.0.2.2/24. The site
    side starts down; the link's up/down commands set it up and down."""

    def __init__(self, tmp):
        tag = uuid.uuid4().hex[:6]
        self.tmp = tmp
        self.site, self.isp = "dm-site-" + tag, "dm-isp-" + tag
        self.vsite, self.visp = "dms" + tag, "dmi" + tag
        self.made = []
        self.procs = []
        for ns in (self.site, self.isp):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", self.site, "link", "add", self.vsite, "type", "veth", "peer", "name",
            self.visp, "netns", self.isp)
        run("ip", "-n", self.site, "addr", "add", "192.0.2.1/24", "dev", self.vsite)
        run("ip", "-n", self.isp, "addr", "add", "192.0.2.2/24", "dev", self.visp)
        run("ip", "-n", self.isp, "link", "set", self.visp, "up")
        self.received = tmp / "sink.received"
        self.received.write_text("")
        sink = subprocess.Popen(["ip", "netns", "exec", self.isp, sys.executable, "-c", SINK,
                                 str(LIB), str(self.received)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(sink)
        assert sink.stdout.readline().strip() == "ready"
        self.daemon = None

    def site_up(self):
        """True when the site side of the veth is administratively up."""
        out = run("ip", "-n", self.site, "-o", "link", "show", self.vsite).stdout
        return bool(re.search(r"<[^>]*\bUP\b[^>]*>", out))

    def isp_side(self, state):
        run("ip", "-n", self.isp, "link", "set", self.visp, state)

    def config(self, port, check=None, extra=(), idle="1s", session=()):
        check = check or ("ping -c 1 -W 1 192.0.2.2" if shutil.which("ping")
                          else "timeout 2 bash -c 'exec 3<>/dev/tcp/192.0.2.2/25'")
        return ["listen = 127.0.0.1:%d" % port, "syslog = no", "run_as_root = yes",
                "queue_run_interval = 1s",
                "[routes]", "example.org = smarthost 192.0.2.2:25 via=vpn tls=none",
                "[phonebook vpn]", "type = command",
                "up = ip link set %s up" % self.vsite,
                "down = ip link set %s down" % self.vsite,
                "check = %s" % check, "up_timeout = 4s",
                "redial_attempts = 2", "redial_interval = 200ms", *extra,
                "[session]", "idle_timeout = %s" % idle, "check_timeout = 3s",
                "session_window = 8s", *session]

    def start_daemon(self, dir, lines):
        """The daemon inside the site namespace (stopped by its PID)."""
        conf = self.tmp / "dialmail.conf"
        conf.write_text("\n".join(lines) + "\n")
        log = open(self.tmp / "daemon.log", "wb")
        p = subprocess.Popen(["ip", "netns", "exec", self.site, os.environ.get(
            "DIALMAIL_BIN", str(REPO / "build" / "dialmail")), "daemon", "--dir", str(dir),
            "--config", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        self.daemon = p
        assert wait_until(lambda: (Path(dir) / "control.sock").exists(), 10), \
            (self.tmp / "daemon.log").read_text()
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.fixture
def netns(tmp_path):
    if not netns_permitted():
        pytest.skip("ip netns is not permitted here")
    r = NetnsRig(tmp_path)
    yield r
    r.stop()
    assert not any(ns in run("ip", "netns", "list").stdout for ns in r.made)


def sendmail(dialmail_bin, dir, subject):
    data = ("From: a@client.test\nTo: x@example.org\nSubject: %s\n\nbody\n" % subject).encode()
    r = subprocess.run([str(dialmail_bin), "sendmail", "--dir", str(dir), "-f", "a@client.test",
                        "x@example.org"], input=data, capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr


def test_command_link_veth_between_namespaces(dialmail_bin, netns, tmp_path):
    dir = tmp_path / "spool"
    netns.start_daemon(dir, netns.config(free_port()))
    for i in range(3):
        sendmail(dialmail_bin, dir, "veth %d" % i)
    time.sleep(1.5)  # a queue run: nothing can go while the link is down
    assert netns.received.read_text() == "" and not netns.site_up()
    r = subprocess.run([str(dialmail_bin), "dial", "--dir", str(dir)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr + (tmp_path / "daemon.log").read_text()
    assert "link check ok" in r.stdout and "delivered 3/3" in r.stdout, r.stdout
    assert wait_until(lambda: len(netns.received.read_text().split()) == 6, 5)
    assert sorted(netns.received.read_text().splitlines()) == ["veth 0", "veth 1", "veth 2"]
    # The down command ran at hang-up: the site side of the veth is down again.
    assert not netns.site_up()
    ev = events(dir)
    ids = [e["id"] for e in ev if 4100 <= e["id"] < 4200]
    assert ids.index(4100) < ids.index(4111) < ids.index(4101) < ids.index(4113) < ids.index(4102)
    up = [e for e in ev if e["id"] == 4101][0]
    assert "command link" in up["text"], up
    s = ledger(dir)[0]
    assert s["result"] == "ok" and s["entry"] == "vpn" and s["messages_out"] == 3
    assert s["hangup_reason"] == "done"


def test_command_link_check_failing_is_a_cause_and_down_runs(dialmail_bin, netns, tmp_path):
    dir = tmp_path / "spool"
    netns.isp_side("down")  # the far end is gone: up works, the check cannot pass
    netns.start_daemon(dir, netns.config(free_port()))
    t0 = time.monotonic()
    r = subprocess.run([str(dialmail_bin), "dial", "--dir", str(dir)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0, r.stdout
    assert time.monotonic() - t0 < 30
    ev = events(dir)
    fails = [e for e in ev if e["id"] == 4106]
    assert len(fails) >= 2, fails
    assert all(e["cause"] == "check-failed" for e in fails), fails
    assert "did not pass within 4000 ms" in fails[0]["text"], fails[0]["text"]
    check_4106(ev)
    assert not netns.site_up()  # down ran after each failed attempt
    s = ledger(dir)[0]
    assert s["result"] == "missed" and all(a["entry"] == "vpn" for a in s["attempts"])
    # The far end comes back: the next session works.
    netns.isp_side("up")
    r = subprocess.run([str(dialmail_bin), "dial", "--dir", str(dir)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    assert not netns.site_up()


def test_command_link_check_failing_mid_session_ends_it(dialmail_bin, netns, tmp_path):
    """The check command keeps running while the session is up (without
    blocking the daemon): when the far end goes away the session ends with
    4117 and its cause, instead of idling on a dead link."""
    dir = tmp_path / "spool"
    port = free_port()
    netns.start_daemon(dir, netns.config(port, idle="2m", session=["hangup_when_done = no"]))
    dial = subprocess.Popen([str(dialmail_bin), "dial", "--dir", str(dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_until(lambda: any(e["id"] == 4101 for e in events(dir)), 20), events(dir)
        time.sleep(6)  # a check or two pass: the session stays up
        assert dial.poll() is None and not any(e["id"] == 4117 for e in events(dir))
        # the daemon answers while checks run (nothing blocks its loop)
        t = time.monotonic()
        r = subprocess.run([str(dialmail_bin), "status", "--dir", str(dir)],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0 and time.monotonic() - t < 3, r.stdout + r.stderr
        netns.isp_side("down")
        t0 = time.monotonic()
        out, _ = dial.communicate(timeout=30)
        assert time.monotonic() - t0 < 20, out
    finally:
        if dial.poll() is None:
            dial.kill()
            dial.wait(5)
    lost = [e for e in events(dir) if e["id"] == 4117]
    assert lost and lost[0]["entry"] == "vpn" and lost[0]["cause"], lost
    s = ledger(dir)[-1]
    assert s["hangup_reason"] == "carrier lost", s
    assert not netns.site_up()  # down ran at hang-up
