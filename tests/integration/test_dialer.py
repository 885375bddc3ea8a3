# The link layer's attempt engine, driven through tools/dialtest against a
# Hayes modem on a pty: build/modemsim when it is built, else the small
# fakemodem.py with the same options. Each scenario checks the outcome and the
# Dial-up events a user would read: every failed attempt is one 4106 whose
# text carries the cause in words, never a bare number.
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIALTEST = Path(os.environ.get("DIALTEST_BIN", REPO / "build" / "dialtest"))
MODEMSIM = REPO / "build" / "modemsim"
FAKEMODEM = Path(__file__).resolve().parent / "fakemodem.py"

pytestmark = pytest.mark.skipif(not DIALTEST.exists(), reason="make build/dialtest first")


def modem_cmd(link, *args):
    if MODEMSIM.exists() and not os.environ.get("DIALTEST_FAKEMODEM"):
        return [str(MODEMSIM), "--link", str(link), *args]
    return [sys.executable, str(FAKEMODEM), "--link", str(link), *args]


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.lock = tmp / "lock"
        self.dir = tmp / "state"
        self.lock.mkdir()
        self.dir.mkdir()
        self.procs = []

    def modem(self, name, *args):
        """Starts a modem whose line is tmp/NAME; returns that path."""
        link = self.tmp / name
        log = open(self.tmp / (name + ".log"), "w")
        p = subprocess.Popen(modem_cmd(link, *args), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        for _ in range(100):
            if link.exists():
                return link
            time.sleep(0.05)
        raise AssertionError("modem did not create %s" % link)

    def config(self, text):
        path = self.tmp / "dial.conf"
        path.write_text(text)
        return path

    def dial(self, text, *entries, extra=()):
        conf = self.config(text)
        r = subprocess.run([str(DIALTEST), "--config", str(conf), "--dir", str(self.dir),
                            "--lock-dir", str(self.lock), *extra, *entries],
                           capture_output=True, text=True, timeout=120)
        events = []
        log = self.dir / "log" / "events.jsonl"
        if log.exists():
            events = [json.loads(l) for l in log.read_text().splitlines()]
        return r, events

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.stop()


def entry(name, device, numbers="5551234", **kw):
    fields = {"device": str(device), "numbers": numbers, "redial_interval": "100ms",
              "at_timeout": "1s", "dial_timeout": "5s"}
    fields.update(kw)
    return "[phonebook %s]\n" % name + "".join("%s = %s\n" % kv for kv in fields.items())


def failures(events):
    return [e for e in events if e["id"] == 4106]


def ids(events):
    return [e["id"] for e in events]


def check_4106_texts(events):
    """Every 4106 names entry, attempt and a cause in words, never [number]."""
    for e in failures(events):
        t = e["text"]
        assert e["category"] == "Dial-up" and e["severity"] == "error"
        assert re.search(r"attempt \d+ of \d+: ", t), t
        cause = t.split(re.search(r"attempt \d+ of \d+: ", t).group(0), 1)[1]
        assert re.match(r"[A-Za-z]", cause), t  # starts with words, not a number
        assert not re.search(r"\[\d+\]", t), t
        assert e["cause"] and e["class"] and e["entry"] in t


def test_busy_then_redial_connects(env):
    m = env.modem("modem0", "--script", "BUSY")
    r, ev = env.dial(entry("isp", m))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "result: up entry=isp number=5551234" in r.stdout
    f = failures(ev)
    assert len(f) == 1 and f[0]["cause"] == "busy" and "BUSY" in f[0]["text"]
    assert "attempt 1 of 3" in f[0]["text"] and "redialling" in f[0]["text"]
    assert ids(ev)[-2:] == [4101, 4102]
    check_4106_texts(ev)


def test_three_busy_moves_to_second_number(env):
    m = env.modem("modem0", "--script", "BUSY,BUSY,BUSY")
    r, ev = env.dial(entry("isp", m, numbers="5551234, 5559876"))
    assert r.returncode == 0, r.stdout
    assert "number=5559876" in r.stdout
    f = failures(ev)
    assert [(e["number"], e["attempt"]) for e in f] == [("5551234", "1"), ("5551234", "2"),
                                                         ("5551234", "3")]
    assert "trying the next number" in f[2]["text"]
    up = [e for e in ev if e["id"] == 4101][0]
    assert up["number"] == "5559876" and "CONNECT" in up["text"]
    check_4106_texts(ev)


def test_no_dialtone_recovers_then_uses_alternate(env):
    a = env.modem("modemA", "--script", "NO DIALTONE,NO DIALTONE,NO DIALTONE")
    b = env.modem("modemB")
    r, ev = env.dial(entry("primary", a) + entry("backup", b, numbers="5550000"))
    assert r.returncode == 0, r.stdout
    assert "result: up entry=backup" in r.stdout
    f = failures(ev)
    assert [e["cause"] for e in f] == ["no-dialtone", "no-dialtone"]
    assert all("NO DIALTONE" in e["text"] and e["class"] == "modem trouble" for e in f)
    rec = [e for e in ev if e["id"] == 4103]
    assert len(rec) == 1 and rec[0]["result"] == "recovered"
    assert "trying the next entry" in f[1]["text"]
    check_4106_texts(ev)


def test_wedged_modem_is_recovered_and_call_succeeds(env):
    m = env.modem("modem0", "--script", "NO CARRIER", "--wedge-after", "1")
    r, ev = env.dial(entry("isp", m))
    assert r.returncode == 0, r.stdout + (env.tmp / "modem0.log").read_text()
    f = failures(ev)
    assert [e["cause"] for e in f] == ["no-carrier", "no-response"]
    assert "does not answer AT commands" in f[1]["text"]
    rec = [e for e in ev if e["id"] == 4103]
    assert len(rec) == 1 and rec[0]["result"] == "recovered", rec
    assert "recovered after" in rec[0]["text"]
    assert "recoveries: 1 recovered: 1" in r.stdout
    check_4106_texts(ev)


def test_silent_modem_gives_no_response_cause(env):
    m = env.modem("modem0", "--silent")
    r, ev = env.dial(entry("isp", m))
    assert r.returncode == 1
    f = failures(ev)
    assert f and f[0]["cause"] == "no-response"
    assert "the modem does not answer AT commands" in f[0]["text"]
    rec = [e for e in ev if e["id"] == 4103]
    assert rec and rec[0]["result"] == "failed"
    last = [e for e in ev if e["id"] == 4105]
    assert len(last) == 1 and "does not answer AT" in last[0]["text"]
    check_4106_texts(ev)


def test_garbage_reply_is_classified(env):
    m = env.modem("modem0", "--garbage")
    r, ev = env.dial(entry("isp", m))
    assert r.returncode == 1
    f = failures(ev)
    assert f and f[0]["cause"] == "garbage" and f[0]["class"] == "modem trouble"
    assert "no result code" in f[0]["text"]
    check_4106_texts(ev)


def test_missing_device_is_config_and_alternate_is_used(env):
    b = env.modem("modemB")
    r, ev = env.dial(entry("gone", env.tmp / "nosuchtty") + entry("backup", b))
    assert r.returncode == 0, r.stdout
    assert "result: up entry=backup" in r.stdout
    f = failures(ev)
    assert len(f) == 1 and f[0]["cause"] == "device-missing"
    assert f[0]["class"] == "configuration or credentials"
    assert "does not exist" in f[0]["text"] and "nosuchtty" in f[0]["text"]
    skip = [e for e in ev if e["id"] == 4104]
    assert len(skip) == 1 and skip[0]["entry"] == "gone"
    check_4106_texts(ev)


def test_lock_held_by_live_pid_is_device_busy(env):
    m = env.modem("modem0")
    lock = env.lock / "LCK..modem0"
    lock.write_text("%10d\n" % os.getpid())
    r, ev = env.dial(entry("isp", m))
    assert r.returncode == 1
    f = failures(ev)
    assert len(f) == 1 and f[0]["cause"] == "device-busy"
    assert "locked by pid %d" % os.getpid() in f[0]["text"]
    assert lock.read_text() == "%10d\n" % os.getpid()  # not ours to remove
    check_4106_texts(ev)


def test_stale_lock_is_removed(env):
    m = env.modem("modem0")
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = env.lock / "LCK..modem0"
    lock.write_text("%10d\n" % dead.pid)
    conf = entry("isp", m)
    r, ev = env.dial(conf, extra=("--hold", "300"))
    assert r.returncode == 0, r.stdout
    assert not failures(ev)
    assert not lock.exists()  # removed as stale, then ours removed at hang-up


def test_our_lock_is_hdb_format_while_up(env):
    m = env.modem("modem0")
    conf = env.config(entry("isp", m))
    p = subprocess.Popen([str(DIALTEST), "--config", str(conf), "--dir", str(env.dir),
                          "--lock-dir", str(env.lock), "--hold", "1500"],
                         stdout=subprocess.PIPE, text=True)
    lock = env.lock / "LCK..modem0"
    text = None
    for _ in range(100):
        if lock.exists():
            text = lock.read_text()
            break
        time.sleep(0.02)
    p.communicate(timeout=30)
    assert text == "%10d\n" % p.pid
    assert p.returncode == 0 and not lock.exists()


PPPD = """#!/bin/sh
# pppd stand-in: args "nodetach ... ipparam UPFILE"; the exit statuses of
# successive runs come from the list in $0.codes; "up" means: signal ip-up
# by creating UPFILE, then run until stopped.
up=""
while [ $# -gt 0 ]; do [ "$1" = ipparam ] && up="$2"; shift; done
codes=$(cat "$0.codes")
first=${codes%%,*}
rest=${codes#*,}; [ "$rest" = "$codes" ] && rest=up
echo "$rest" > "$0.codes"
echo run >> "$0.runs"
if [ "$first" = up ]; then touch "$up"; exec sleep 60; fi
exit "$first"
"""


def pppd_standin(env, codes):
    path = env.tmp / "pppd-standin"
    path.write_text(PPPD)
    path.chmod(0o755)
    (env.tmp / "pppd-standin.codes").write_text(codes)
    return path


def test_pppd_auth_failure_is_not_hammered(env):
    m = env.modem("modem0")
    pppd = pppd_standin(env, "19")
    r, ev = env.dial(entry("isp", m, numbers="5551234, 5559876", data="ppp", pppd=pppd,
                           ppp_up_file=env.tmp / "up", up_timeout="5s"))
    assert r.returncode == 1
    f = failures(ev)
    assert len(f) == 1, [e["text"] for e in f]
    assert f[0]["cause"] == "ppp-auth-failed"
    assert f[0]["class"] == "configuration or credentials"
    assert "pppd exit status 19: authentication failed" in f[0]["text"]
    assert (env.tmp / "pppd-standin.runs").read_text().count("run") == 1
    skip = [e for e in ev if e["id"] == 4104]
    assert len(skip) == 1 and "authenticat" in skip[0]["text"]
    check_4106_texts(ev)


def test_pppd_modem_hangup_is_transient(env):
    m = env.modem("modem0")
    pppd = pppd_standin(env, "16,up")
    r, ev = env.dial(entry("isp", m, data="ppp", pppd=pppd, ppp_up_file=env.tmp / "up",
                           up_timeout="5s"))
    assert r.returncode == 0, r.stdout
    f = failures(ev)
    assert len(f) == 1 and f[0]["cause"] == "ppp-modem-hangup"
    assert f[0]["class"] == "transient"
    assert "the modem hung up" in f[0]["text"]
    assert (env.tmp / "up").exists()
    up = [e for e in ev if e["id"] == 4101]
    assert "data phase ppp" in up[0]["text"]
    check_4106_texts(ev)


def test_command_link_up_check_down(env):
    flag = env.tmp / "flag"
    conf = ("[phonebook vpn]\ntype = command\nup = touch %s\ncheck = test -f %s\n"
            "down = rm -f %s\nup_timeout = 5s\n" % (flag, flag, flag))
    r, ev = env.dial(conf)
    assert r.returncode == 0, r.stdout
    assert ids(ev) == [4100, 4101, 4102]
    assert not flag.exists()  # down ran at hang-up


def test_command_link_failure_has_exit_status_in_words(env):
    conf = ("[phonebook vpn]\ntype = command\nup = echo tunnel refused >&2; exit 3\n"
            "redial_attempts = 2\nredial_interval = 100ms\n"
            "[phonebook lan]\ntype = always\n")
    r, ev = env.dial(conf)
    assert r.returncode == 0 and "result: up entry=lan" in r.stdout
    f = failures(ev)
    assert len(f) == 2
    assert "the link command failed (exit status 3): tunnel refused" in f[0]["text"]
    check_4106_texts(ev)


def test_link_check_failure_hangs_up_and_redials(env):
    m = env.modem("modem0")
    r, ev = env.dial(entry("isp", m, redial_attempts="2"), extra=("--check-port", "1"))
    assert r.returncode == 1
    f = failures(ev)
    assert [e["cause"] for e in f] == ["link-check-failed"] * 2
    assert "mail server on the far side did not answer" in f[0]["text"]
    check_4106_texts(ev)


def test_window_closes_the_round_without_round_failed_event(env):
    m = env.modem("modem0", "--script", "BUSY,BUSY,BUSY")
    r, ev = env.dial(entry("isp", m, redial_interval="5s"), extra=("--window", "1"))
    assert r.returncode == 1
    assert len(failures(ev)) == 1  # the pause to the redial would pass the window
    assert 4105 not in ids(ev)
    assert "session window closed" in r.stdout
