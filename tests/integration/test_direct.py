# data = direct: a dialmail branch dials modemsim, whose data path leads to a
# dialmail hub's ODMR port, and speaks SMTP over the serial line itself:
# greeting, EHLO, AUTH, its outbound mail, ATRN, the held mail back, QUIT,
# hang-up. Invariant: every process is stopped by PID, every wait is bounded.
import os
import sys
from pathlib import Path

import pytest

from conftest import free_port, message, send_message, wait_until
from test_odmr import PASSWORD, USER, hub
from test_session import dial, ledger

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lib"))
from modem import ModemSim  # noqa: E402

MODEMSIM = Path(os.environ.get("MODEMSIM_BIN", REPO / "build" / "modemsim"))
pytestmark = pytest.mark.skipif(not MODEMSIM.exists(), reason="make build/modemsim first")


@pytest.fixture
def modems():
    started = []
    yield started
    for m in started:
        m.stop()


def modem(modems, tmp_path, target_port, *args):
    m = ModemSim(MODEMSIM, tmp_path / ("ttyD%d" % len(modems)), "--bps", "115200",
                 "--connect", "127.0.0.1:%d" % target_port, *args)
    modems.append(m)
    m.start()
    return m


def branch(daemon, tmp_path, link):
    lock = tmp_path / "lock"
    lock.mkdir(exist_ok=True)
    auth = tmp_path / "branch-auth"
    auth.write_text("hub %s %s\n" % (USER, PASSWORD))
    auth.chmod(0o600)
    return daemon("hostname = gw.branch.example", "local_domains = branch.example",
                  "local_recipients = bob", "queue_run_interval = 1s",
                  "auth_file = %s" % auth, "lock_dir = %s" % lock,
                  "[routes]", "* = smarthost 127.0.0.1:25 via=hubline",
                  "[phonebook hubline]", "type = modem", "device = %s" % link,
                  "numbers = 5551234", "data = direct", "redial_interval = 200ms",
                  "at_timeout = 1s", "dial_timeout = 5s",
                  "[session]", "retrieve = atrn", "atrn_domains = branch.example",
                  "atrn_auth = hub", "idle_timeout = 1s", "check_timeout = 3s",
                  "retrieve_timeout = 10s")


def hub_queue_bodies(h):
    out = []
    for qid in h.queue_ids():
        out.append((h.dir / "queue" / qid).read_bytes() if (h.dir / "queue" / qid).exists()
                   else b"")
    return out


def maildir_has(files, body):
    want = body.replace(b"\r\n", b"\n")
    return sum(f.read_bytes().endswith(want) for f in files)


def test_outbound_then_atrn_on_one_circuit(daemon, tmp_path, modems):
    # other.example mail stays held at the hub (hold_domains), so it can be
    # found there byte-exact after it crossed the line.
    h = hub(daemon, tmp_path)
    held = [message("held %d" % i, body="held body %d\r\n..leading dot" % i) for i in range(2)]
    for b in held:
        assert send_message(h.port, "s@sender.example", ["bob@branch.example"], b).code == 250
    before = set(h.queue_ids())
    m = modem(modems, tmp_path, h.odmr_port)
    br = branch(daemon, tmp_path, m.link)
    out = message("from the branch", body="outbound body\r\n..dot")
    assert send_message(br.port, "alice@branch.example", ["remote@other.example"],
                        out).code == 250
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    # Held mail arrived in the branch's Maildir, byte-exact.
    assert wait_until(lambda: len(br.maildir_files("bob")) == 2, 10), (r.stdout, br.events())
    files = br.maildir_files("bob")
    for b in held:
        assert maildir_has(files, b.replace(b"\r\n..", b"\r\n.")) == 1, b
    # Outbound mail went over the line and is queued at the hub.
    assert br.queue_ids() == [], br.events()
    assert br.events_with(3001) and "over the line" in br.events_with(3001)[0]["text"]
    new = [q for q in h.queue_ids() if q not in before]
    assert len(new) == 1, (h.queue_ids(), before)
    data = (h.dir / "queue" / new[0]).read_bytes()
    assert out.replace(b"\r\n..", b"\r\n.") in data, data
    assert b"remote@other.example" in data
    # The held mail left the hub, the session told the story.
    assert wait_until(lambda: h.queue_ids() == new, 5), h.queue_ids()
    assert h.events_with(2031)
    led = ledger(br)[-1]
    assert led["result"] == "ok" and led["messages_out"] == 1 and led["messages_in"] == 2, led
    assert "QUIT" in led["hangup_reason"], led
    assert "SMTP over the line" in r.stdout


def test_line_dropped_mid_atrn_loses_nothing(daemon, tmp_path, modems):
    h = hub(daemon, tmp_path)
    bodies = [message("m%d" % i, body=("x" * 70 + "\r\n") * 60) for i in range(3)]
    for b in bodies:
        assert send_message(h.port, "s@sender.example", ["bob@branch.example"], b).code == 250
    # Greeting, EHLO, AUTH, ATRN, then about 1.5 messages of held data.
    m = modem(modems, tmp_path, h.odmr_port, "--script", "DROP:8000,CONNECT")
    br = branch(daemon, tmp_path, m.link)
    r1 = dial(br)
    assert br.wait_event(4124, 10, pred=lambda e: "dropped" in e["text"]
                         or "closed" in e["text"] or "ended" in e["text"]), br.events()
    first = len(br.maildir_files("bob"))
    assert h.wait_event(3031, 10)
    held = len(h.queue_ids())
    assert 1 <= held <= 3 and first + held >= 3, (first, held, r1.stdout)
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: len(br.maildir_files("bob")) == 3, 10), \
        (first, br.maildir_files("bob"), r.stdout)
    files = br.maildir_files("bob")
    for b in bodies:
        assert maildir_has(files, b) == 1
    assert wait_until(lambda: h.queue_ids() == [], 5)
    assert len(br.events_with(2023)) == first + held - 3, br.events_with(2023)

