# Dial-up sessions end to end: the real daemon, modemsim on a pty, and the
# SMTP recorder as the smarthost behind modemsim's gateway port (reachable
# only while a call is up). `dialmail dial` streams progress and exits by the
# session's result; the ledger (DIR/log/sessions.jsonl) and the Dial-up
# events tell the story. Invariant: every process a test starts is stopped by
# its PID, and every wait is bounded.
import json
import os
import re
import subprocess
import time

import pytest

from dialup import MODEMSIM, dial, ledger
from modem import ModemSim
from ports import free_port
from smtpraw import message
from wait import wait_until

pytestmark = pytest.mark.skipif(not MODEMSIM.exists(), reason="make build/modemsim first")


def check_4106(events):
    """Every failed attempt: a 4106 with a cause in words, never a bare number."""
    for e in events:
        if e["id"] != 4106:
            continue
        assert e["cause"] and e["class"] and e["entry"] in e["text"], e
        assert re.search(r"attempt \d+ of \d+: [A-Za-z]", e["text"]), e["text"]
        assert not re.search(r"\[\d+\]", e["text"]), e["text"]


def test_busy_busy_connect_redials_and_hangs_up(daemon, rig):
    link, gw = rig.modem("modem0", "--script", "BUSY,BUSY")
    d = daemon(*rig.config(rig.entry("isp", link),
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp" % gw]))
    r = dial(d)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    # Live progress: each step in order.
    steps = ["session started", "Dialing", "BUSY", "redialling in 0.2s", "BUSY",
             "CONNECT 33600", "link check ok", "outbound done", "hung up: done",
             "session ok"]
    pos = 0
    for s in steps:
        i = out.find(s, pos)
        assert i >= 0, "%r not after position %d in:\n%s" % (s, pos, out)
        pos = i + len(s)
    led = ledger(d)
    assert len(led) == 1
    s = led[0]
    assert s["result"] == "ok" and s["reason"] == "dial command" and s["entry"] == "isp"
    assert [(a["cause"], a["attempt"]) for a in s["attempts"]] == [
        ("busy", 1), ("busy", 2), ("connected", 3)]
    assert "BUSY" in s["attempts"][0]["text"] and s["attempts"][2]["text"] == "CONNECT 33600"
    assert s["hangup_reason"] == "done", s
    ids = [e["id"] for e in d.events() if 4100 <= e["id"] < 4200]
    assert ids.count(4106) == 2
    for want in (4110, 4111, 4101, 4113, 4102, 4114):
        assert want in ids, ids
    assert ids.index(4110) < ids.index(4101) < ids.index(4113) < ids.index(4102) < ids.index(4114)
    check_4106(d.events())
    # The smarthost was reached through the call (the link check's greeting).
    assert wait_until(lambda: len(rig.rec.sessions) >= 1, 2)
    st = d.cli("status", "--dir", str(d.dir)).stdout
    assert "link: down" in st and "last session: ok" in st, st


def test_wedged_modem_is_recovered_and_session_succeeds(daemon, rig):
    link, gw = rig.modem("modem0", "--script", "NO CARRIER", "--wedge-after", "1")
    d = daemon(*rig.config(rig.entry("isp", link)))
    r = dial(d)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = d.events_with(4103)
    assert len(rec) == 1 and rec[0]["result"] == "recovered", rec
    s = ledger(d)[0]
    assert [a["cause"] for a in s["attempts"]] == ["no-carrier", "no-response", "connected"]
    assert s["result"] == "ok"
    check_4106(d.events())


def test_all_entries_failing_is_a_missed_session(daemon, rig):
    a, _ = rig.modem("modemA", "--script", "BUSY,BUSY,BUSY,BUSY", gateway=False)
    b, _ = rig.modem("modemB", "--script", "NO DIALTONE,NO DIALTONE,NO DIALTONE",
                     gateway=False)
    d = daemon(*rig.config(rig.entry("primary", a, redial_attempts="2") +
                           rig.entry("backup", b, numbers="5550000"),
                           session=["session_window = 3s"]))
    t0 = time.monotonic()
    r = dial(d)
    assert r.returncode != 0, r.stdout
    assert time.monotonic() - t0 < 20
    assert "session failed" in r.stdout and "NO DIALTONE" in r.stdout, r.stdout
    fails = d.events_with(4106)
    assert [e["cause"] for e in fails] == ["busy", "busy", "no-dialtone", "no-dialtone"], fails
    check_4106(d.events())
    missed = d.events_with(4115)
    assert len(missed) == 1 and missed[0]["severity"] == "error"
    t = missed[0]["text"]
    assert "4 failed attempts" in t, t
    assert "primary 5551234 attempt 1 of 2: BUSY" in t and "backup 5550000" in t, t
    assert "NO DIALTONE" in t and not re.search(r"\[\d+\]", t)
    s = ledger(d)[0]
    assert s["result"] == "missed" and s["entry"] is None
    assert len(s["attempts"]) == 4 and all(a["cause"] != "connected" for a in s["attempts"])


def test_unknown_entry_is_refused(daemon, rig):
    link, _ = rig.modem("modem0", gateway=False)
    d = daemon(*rig.config(rig.entry("isp", link)))
    r = dial(d, "nosuch")
    assert r.returncode != 0
    assert "no phone book entry 'nosuch'" in r.stderr
    assert ledger(d) == []


def local_hms(t):
    return time.strftime("%H:%M:%S", time.localtime(t))


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


def test_catch_up_after_the_daemon_was_down_across_a_slot(daemon, rig):
    link, _ = rig.modem("modem0", gateway=False)
    slot = int(time.time()) + 4
    d = daemon(*rig.config(rig.entry("isp", link), session=["schedule = at %s" % local_hms(slot)]))
    assert (d.dir / "scheduler.state").exists()
    d.stop()
    assert ledger(d) == []
    wait_until(lambda: time.time() > slot + 1, 8)
    d.start()
    assert wait_until(lambda: ledger(d), 15), d.log_text()
    s = ledger(d)[0]
    assert s["reason"] == "catch-up" and s["result"] == "ok", s
    assert s["slot"].startswith(iso(slot)), (s["slot"], iso(slot))
    cu = d.events_with(4116)
    assert cu and "missed while the daemon was down" in cu[0]["text"]
    # Served: a restart does not dial again.
    d.restart()
    time.sleep(1.5)
    assert len(ledger(d)) == 1


def test_missed_window_is_caught_up(daemon, rig):
    link, _ = rig.modem("modem0", "--script", "BUSY,BUSY", gateway=False)
    slot = int(time.time()) + 3
    d = daemon(*rig.config(rig.entry("isp", link, redial_attempts="2"),
                           session=["schedule = at %s" % local_hms(slot),
                                    "session_window = 2s"]))
    assert wait_until(lambda: len(ledger(d)) >= 2, 20), (ledger(d), d.log_text())
    first, second = ledger(d)[:2]
    assert first["reason"] == "scheduled" and first["result"] == "missed"
    assert [a["cause"] for a in first["attempts"]] == ["busy", "busy"]
    assert second["reason"] == "catch-up" and second["result"] == "ok"
    assert first["slot"] == second["slot"] and first["slot"].startswith(iso(slot))
    missed = d.events_with(4115)
    assert len(missed) == 1 and "BUSY" in missed[0]["text"]
    cu = d.events_with(4116)
    assert cu and "attempt 2" in cu[0]["text"]


def test_scheduled_every_few_seconds(daemon, rig):
    link, _ = rig.modem("modem0", gateway=False)
    d = daemon(*rig.config(rig.entry("isp", link), session=["schedule = every 3s"]))
    assert wait_until(lambda: len(ledger(d)) >= 2, 15), d.log_text()
    for s in ledger(d)[:2]:
        assert s["reason"] == "scheduled" and s["result"] == "ok"
        secs = int(s["slot"][17:19])
        assert secs % 3 == 0, s["slot"]
        assert s["next_slot"] and s["next_slot"] > s["slot"]
    st = d.cli("status", "--dir", str(d.dir)).stdout
    assert "schedule: every 3s" in st and "next slot: " in st


def test_mail_for_the_link_goes_out_only_during_the_session(daemon, rig):
    link, gw = rig.modem("modem0")
    d = daemon(*rig.config(rig.entry("isp", link),
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp tls=none" % gw]))
    r = d.send("sender@client.test", ["someone@example.org"], message("via link"))
    assert r.code == 250, r
    time.sleep(2.5)  # two queue runs: nothing may go out while the link is down
    assert not any(s.messages for s in rig.rec.sessions)
    assert len(d.queue_ids()) == 1
    r = dial(d)
    assert r.returncode == 0, r.stdout + r.stderr
    msgs = [m for s in rig.rec.sessions for m in s.messages]
    assert len(msgs) == 1 and b"Subject: via link" in msgs[0].data
    assert "delivered 1/1" in r.stdout, r.stdout
    s = ledger(d)[0]
    assert s["messages_out"] == 1 and s["bytes_out"] > 0
    assert wait_until(lambda: d.queue_ids() == [], 3)


def rcpt_state(d, addr):
    """The queue's state of recipient addr: (attempts, next_attempt, last_reply)."""
    for e in d.queue():
        for r in e["recipients"]:
            if r["addr"] == addr:
                return r["attempts"], r["next_attempt"], r["last_reply"]
    return None


def test_link_up_retries_only_mail_routed_via_the_link(daemon, rig):
    """When the link comes up, deferred mail for routes via it goes at once;
    deferred mail for another route keeps its retry time (no attempt)."""
    link, gw = rig.modem("modem0")
    dead = free_port()  # the other smarthost: nothing listens there
    d = daemon(*rig.config(rig.entry("isp", link),
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp tls=none" % gw,
                                   "elsewhere.test = smarthost 127.0.0.1:%d tls=none" % dead]))
    # Not via the link: tried at once, refused, deferred for retry_intervals' 15m.
    assert d.send("a@client.test", ["other@elsewhere.test"], message("elsewhere")).code == 250
    assert wait_until(lambda: (rcpt_state(d, "other@elsewhere.test") or (0,))[0] == 1, 10)
    # Via the link: deferred by the smarthost in a first session.
    rig.rec.rcpt_replies["someone@example.org"] = "451 4.3.0 try again later"
    assert d.send("a@client.test", ["someone@example.org"], message("via link")).code == 250
    r = dial(d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: (rcpt_state(d, "someone@example.org") or (0,))[0] == 1, 5)
    via_before = rcpt_state(d, "someone@example.org")
    other_before = rcpt_state(d, "other@elsewhere.test")
    assert via_before[1] and other_before[1]  # both wait for a retry time in the future
    deferrals = [e for e in d.events_with(3002) if e.get("rcpt") == "other@elsewhere.test"]
    del rig.rec.rcpt_replies["someone@example.org"]

    r = dial(d)
    assert r.returncode == 0, r.stdout + r.stderr
    msgs = [m for s in rig.rec.sessions for m in s.messages]
    assert len(msgs) == 1 and b"Subject: via link" in msgs[0].data
    assert msgs[0].rcpts == ["someone@example.org"]
    assert rcpt_state(d, "someone@example.org") is None  # delivered, gone from the queue
    # The other one was not tried: same attempts and retry time, no new event.
    assert rcpt_state(d, "other@elsewhere.test") == other_before
    assert [e for e in d.events_with(3002)
            if e.get("rcpt") == "other@elsewhere.test"] == deferrals


def test_sessions_cli_lists_the_ledger(daemon, rig):
    link, _ = rig.modem("modem0", "--script", "BUSY", gateway=False)
    d = daemon(*rig.config(rig.entry("isp", link)))
    assert dial(d).returncode == 0
    out = d.cli("sessions", "--dir", str(d.dir)).stdout
    assert "ok" in out and "dial command" in out and "BUSY" in out, out
    js = [json.loads(l) for l in d.cli("sessions", "--dir", str(d.dir), "--json").stdout.splitlines()]
    assert len(js) == 1 and js[0]["attempts"][0]["cause"] == "busy"


def test_bad_session_settings_are_reported(run_cli, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[phonebook lan]\ntype = always\n[session]\nschedule = every 0s\n"
                    "entries = lan, nosuch\nidle_timeout = soon\n")
    r = run_cli("check-config", "--config", str(conf))
    assert r.returncode == 78
    assert "schedule: 'every 0s'" in r.stderr or "not a duration" in r.stderr, r.stderr
    assert "idle_timeout" in r.stderr and "no [phonebook nosuch]" in r.stderr, r.stderr


def test_status_without_daemon(run_cli, tmp_path):
    r = run_cli("status", "--dir", str(tmp_path))
    assert r.returncode != 0 and "not running" in r.stdout
    r = run_cli("dial", "--dir", str(tmp_path))
    assert r.returncode != 0 and "no daemon" in r.stderr


def send_to_link(d, n):
    for i in range(n):
        r = subprocess.run([d.bin, "sendmail", "-f", "me@branch.test", "r%d@example.org" % i],
                           input=b"Subject: %d\n\nbody\n" % i, capture_output=True,
                           env=dict(os.environ, DIALMAIL_DIR=str(d.dir)), timeout=30)
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("when_done", ["yes", "no"])
def test_hangs_up_when_the_work_is_done(daemon, rig, when_done):
    """With the default idle_timeout (2m), the line is dropped as soon as the
    outbound mail is sent and retrieval is over, not two minutes later; with
    hangup_when_done = no only the idle timer (here 3s) hangs up."""
    link, gw = rig.modem("modem0")
    d = daemon(*rig.config(rig.entry("isp", link),
                           session=["hangup_when_done = %s" % when_done]
                           + (["idle_timeout = 3s"] if when_done == "no" else
                              ["idle_timeout = 2m"]),
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp" % gw]))
    send_to_link(d, 3)
    t0 = time.monotonic()
    r = dial(d)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert sum(len(x.messages) for x in rig.rec.sessions) == 3
    s = ledger(d)[-1]
    assert s["messages_out"] == 3, s
    if when_done == "yes":
        assert "hung up: done" in r.stdout and s["hangup_reason"] == "done", s
        assert s["connect_seconds"] < 3 and took < 15, (s, took)
    else:
        assert "hung up: idle" in r.stdout and s["hangup_reason"] == "idle", s
        assert s["connect_seconds"] >= 3, s
    ended = [e for e in d.events() if e["id"] == 4114]
    assert ended and ended[-1]["reason"] == s["hangup_reason"], ended


def test_done_grace_after_a_retrieval_whose_end_cannot_be_known(daemon, rig):
    """After retrieve = command the provider may still call back: the work
    counts as done only after done_grace without activity, then the line
    drops at once (idle_timeout, 2m here, is only the safety net)."""
    link, gw = rig.modem("modem0")
    d = daemon(*rig.config(rig.entry("isp", link),
                           session=["idle_timeout = 2m", "done_grace = 2s", "retrieve = command",
                                    "retrieve_command = true"],
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp" % gw]))
    r = dial(d)
    assert r.returncode == 0, r.stdout + r.stderr
    s = ledger(d)[-1]
    assert "hung up: done" in r.stdout and s["hangup_reason"] == "done", (r.stdout, s)
    assert 2 <= s["connect_seconds"] < 10, s


def test_open_inbound_smtp_keeps_the_line_up(daemon, rig):
    link, _ = rig.modem("modem0", gateway=False)
    # the far side comes over loopback here: provider_networks names it
    # the safety net: with the state unknown, only idle_timeout hangs up
    d = daemon(*rig.config(rig.entry("isp", link), session=["hangup_when_done = no"],
                           main=["provider_networks = 127.0.0.1/32"]))
    p = subprocess.Popen([d.bin, "dial", "--dir", str(d.dir)], stdout=subprocess.PIPE,
                         text=True)
    try:
        assert d.wait_event(4113, 10), d.log_text()
        with d.smtp() as c:  # an inbound session from the far side
            time.sleep(2.5)  # well past idle_timeout = 1s
            assert p.poll() is None and not d.events_with(4102)
            c.cmd("QUIT")
        out, _ = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and "hung up: idle" in out
    assert ledger(d)[0]["connect_seconds"] >= 2.5


def test_max_session_time_hangs_up(daemon, rig):
    link, _ = rig.modem("modem0", gateway=False)
    d = daemon(*rig.config(rig.entry("isp", link), session=["max_session_time = 2s"],
                           main=["provider_networks = 127.0.0.1/32"]))
    with d.smtp():  # the provider's session would keep the line up
        r = dial(d)
    assert r.returncode == 0 and "hung up: max_session_time reached" in r.stdout, r.stdout
    s = ledger(d)[0]
    assert s["hangup_reason"] == "max_session_time reached" and 2 <= s["connect_seconds"] < 4


def test_daemon_stop_during_dialing_ends_the_session(daemon, rig):
    link, _ = rig.modem("modem0", "--script", "BUSY,BUSY", gateway=False)
    d = daemon(*rig.config(rig.entry("isp", link, redial_interval="30s")))
    p = subprocess.Popen([d.bin, "dial", "--dir", str(d.dir)], stdout=subprocess.PIPE,
                         text=True)
    try:
        assert d.wait_event(4106, 10)
        t0 = time.monotonic()
        d.stop()
        assert time.monotonic() - t0 < 5
        out, _ = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0, out
    s = ledger(d)[0]
    assert s["result"] == "missed" and [a["cause"] for a in s["attempts"]] == ["busy"]
    assert d.events_with(4115)


def test_carrier_lost_mid_transfer_keeps_the_message(daemon, rig):
    link, gw = rig.modem("modem0", "--drop-after-bytes", "400")
    d = daemon(*rig.config(rig.entry("isp", link),
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp tls=none" % gw]))
    r = d.send("sender@client.test", ["someone@example.org"],
               message("big", body="\r\n".join(["x" * 70] * 60)))
    assert r.code == 250
    r = dial(d)
    assert "carrier lost" in r.stdout, r.stdout
    assert d.events_with(4117)
    assert ledger(d)[0]["hangup_reason"] == "carrier lost"
    assert len(d.queue_ids()) == 1  # nothing lost: still queued for the next session


def test_queued_mail_triggers_a_session(daemon, rig):
    link, gw = rig.modem("modem0")
    d = daemon(*rig.config(rig.entry("isp", link),
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp tls=none" % gw],
                           session=["dial_when_queued = 2", "min_dial_interval = 0"]))
    assert d.send("a@client.test", ["x@example.org"], message("one")).code == 250
    time.sleep(3)  # one message is below the threshold: no session
    assert ledger(d) == []
    assert d.send("a@client.test", ["y@example.org"], message("two")).code == 250
    assert wait_until(lambda: ledger(d), 15), d.log_text()
    s = ledger(d)[0]
    assert s["reason"] == "queued mail" and s["result"] == "ok" and s["messages_out"] == 2
    assert len([m for x in rig.rec.sessions for m in x.messages]) == 2


def test_link_check_failure_is_its_own_cause(daemon, rig):
    dead = free_port()  # nothing listens behind the "ISP"
    port = free_port()
    m = ModemSim(MODEMSIM, rig.tmp / "modem0", "--gateway-port", str(port),
                 "--connect", "127.0.0.1:%d" % dead)
    rig.modems.append(m)
    m.start()
    d = daemon(*rig.config(rig.entry("isp", m.link, redial_attempts="2"),
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp" % port],
                           session=["session_window = 3s", "check_timeout = 1s"]))
    r = dial(d)
    assert r.returncode != 0, r.stdout
    f = d.events_with(4106)
    assert [e["cause"] for e in f] == ["link-check-failed"] * 2, f
    assert len(d.events_with(4112)) == 2 and not d.events_with(4111)
    assert ledger(d)[0]["result"] == "missed"


@pytest.mark.parametrize("provider", [False, True], ids=["lan-client", "provider"])
def test_only_the_providers_smtp_keeps_the_line_up(daemon, rig, provider):
    """An SMTP client of the LAN (in mynetworks) submitting mail while the
    line is up neither keeps the session up nor counts as inbound mail; a
    client in provider_networks does both."""
    link, gw = rig.modem("modem0")
    main = ["provider_networks = 127.0.0.1/32"] if provider else []
    d = daemon(*rig.config(rig.entry("isp", link),
                           session=["idle_timeout = 2s", "hangup_when_done = no"],
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp" % gw],
                           main=main))
    proc = subprocess.Popen([d.bin, "dial", "--dir", str(d.dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_until(lambda: d.events_with(4101), 20), d.events()
        with d.smtp() as c:
            assert c.cmd("EHLO lan.client").code == 250
            assert c.cmd("MAIL FROM:<a@lan.example>").code == 250
            assert c.cmd("RCPT TO:<postmaster@localhost>").code == 250
            assert c.cmd("DATA").code == 354
            assert c.cmd("Subject: during the session\r\n\r\nbody\r\n.").code == 250
            # the connection stays open past idle_timeout
            if provider:
                time.sleep(5)
                assert proc.poll() is None, "hung up while the provider was connected"
            else:
                out, _ = proc.communicate(timeout=20)
                assert "hung up: idle" in out, out
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    s = ledger(d)[-1]
    assert s["hangup_reason"] == "idle", s
    assert s["messages_in"] == (1 if provider else 0), s
