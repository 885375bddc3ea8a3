# [answer NAME]: the hub answers calls on a serial device. Two modemsims make
# the telephone line: the branch dials modemsim A, whose --connect leads to
# modemsim B's --answer-port; B rings the hub's tty, the hub answers (ATA)
# and runs its ODMR-port dialogue on the line: the branch's outbound mail
# and the held mail back at once (XDMBATCH DUPLEX; ATRN with plain SMTP),
# hang-up (DTR drop), ready for the next call. Invariant: every process is stopped by PID, every wait is bounded.
import time

import pytest

from dialup import MODEMSIM, dial, ledger
from direct import branch, exchange, maildir_has
from modem import ModemSim
from odmr import users_file
from ports import free_port
from smtpraw import message, send_message
from wait import wait_until

pytestmark = pytest.mark.skipif(not MODEMSIM.exists(), reason="make build/modemsim first")


@pytest.fixture
def line(tmp_path):
    """line(*caller_args) -> (caller modemsim, answerer modemsim): a
    telephone line between two emulated modems at 115200 bps."""
    started = []

    def make(*caller_args):
        port = free_port()
        b = ModemSim(MODEMSIM, tmp_path / "ttyHUB", "--bps", "115200",
                     "--answer-port", str(port), "--ring-interval", "200")
        a = ModemSim(MODEMSIM, tmp_path / "ttySITE", "--bps", "115200",
                     "--connect", "127.0.0.1:%d" % port, *caller_args)
        started.extend([b, a])
        b.start()
        a.start()
        return a, b

    yield make
    for m in started:
        m.stop()


def answering_hub(daemon, tmp_path, device, *extra):
    lock = tmp_path / "hub-lock"
    lock.mkdir(exist_ok=True)
    return daemon("hostname = hub.example", "hold_domains = branch.example, other.example",
                  "auth_users_file = %s" % users_file(tmp_path),
                  "odmr_domains = alice=branch.example, bob=other.example",
                  "queue_run_interval = 1s", "lock_dir = %s" % lock, *extra,
                  "[answer hubmodem]", "device = %s" % device, "rings = 2",
                  "init = ATZ | ATE0 V1 S0=0", "at_timeout = 1s", "answer_timeout = 5s")


def test_hub_answers_the_call_and_exchanges_mail_both_ways(daemon, tmp_path, line):
    site_modem, hub_modem = line()
    h = answering_hub(daemon, tmp_path, hub_modem.link)
    assert h.wait_event(4130, 5), h.events()
    # held mail to the branch and its outbound mail to the hub, byte-exact
    br, r, _ = exchange(daemon, tmp_path, h, site_modem.link)
    led = ledger(br)[-1]
    assert led["result"] == "ok" and led["messages_out"] == 1 and led["messages_in"] == 2, led
    # both ways as XDMBATCH (docs/batch-protocol.md): outbound to the hub, held mail back
    assert [e["messages"] for e in h.events_with(2040)] == ["1"], h.events_with(2040)
    assert [e["messages"] for e in br.events_with(2040)] == ["2"], br.events_with(2040)
    # ... at the same time (XDMBATCH DUPLEX, section 12): no ATRN turn
    assert [e for e in h.events_with(2031) if "DUPLEX" in e["text"]], h.events_with(2031)
    # the hub's story: answered after two RINGs, the dialogue ended, hung up
    call = h.wait_event(4131, 5)
    assert call and "after 2 RINGs" in call[0]["text"] and "CONNECT 115200" in call[0]["text"]
    assert call[0]["line"] == "hubmodem"
    ended = h.wait_event(4132, 10)
    assert ended and ended[0]["reason"] == "done", ended
    assert hub_modem.wait_transcript(r"call 1 answered after 2 rings -> CONNECT 115200")
    assert hub_modem.wait_transcript(r"call 1 hangup reason=dtr")
    # ... and is ready again: a second call carries the next message
    assert h.wait_event(4130, 10, pred=lambda e: True) and \
        wait_until(lambda: len(h.events_with(4130)) >= 2, 10), h.events_with(4130)
    out2 = message("second call", body="second body")
    assert send_message(br.port, "alice@branch.example", ["remote@other.example"],
                        out2).code == 250
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: len(h.events_with(4131)) == 2, 10)
    assert wait_until(lambda: any(out2 in (h.dir / "queue" / q).read_bytes()
                                  for q in h.queue_ids()), 10), h.queue_ids()
    assert br.queue_ids() == []


def test_line_dropped_mid_call_hub_hangs_up_and_answers_again(daemon, tmp_path, line):
    # the caller's modem loses carrier after ~1.5 held messages
    site_modem, hub_modem = line("--script", "DROP:8000,CONNECT")
    h = answering_hub(daemon, tmp_path, hub_modem.link)
    bodies = [message("m%d" % i, body=("x" * 70 + "\r\n") * 60) for i in range(3)]
    for b in bodies:
        assert send_message(h.port, "s@sender.example", ["bob@branch.example"], b).code == 250
    br = branch(daemon, tmp_path, site_modem.link)
    dial(br)
    ended = h.wait_event(4132, 15)
    assert ended and ended[0]["reason"] in ("carrier", "done", "closed"), ended
    assert hub_modem.wait_transcript(r"call 1 hangup reason=(remote|dtr)")
    assert wait_until(lambda: len(h.events_with(4130)) >= 2, 10), h.events()
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: len(br.maildir_files("bob")) == 3, 15), \
        (br.maildir_files("bob"), r.stdout)
    files = br.maildir_files("bob")
    for b in bodies:
        assert maildir_has(files, b) == 1
    assert wait_until(lambda: h.queue_ids() == [], 5)


def test_answer_line_without_its_device_is_logged_and_smtp_goes_on(daemon, tmp_path):
    h = answering_hub(daemon, tmp_path, tmp_path / "no-such-tty")
    ev = h.wait_event(4133, 5)
    assert ev and ev[0]["line"] == "hubmodem" and "no-such-tty" in ev[0]["text"], ev
    assert ev[0]["cause"], ev
    assert send_message(h.port, "s@sender.example", ["bob@branch.example"],
                        message("x")).code == 250


def test_answer_section_checked_and_shown(run_cli, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[answer a]\nrings = 2\n[answer b]\ndevice = /dev/ttyS1\nnumbers = 1\n"
                   "[answer c]\ndevice = /dev/ttyS2\nrings = 99\n"
                   "[phonebook isp]\ndevice = /dev/ttyS2\nnumbers = 5551234\n")
    r = run_cli("check-config", "--config", str(bad))
    assert r.returncode != 0
    assert "bad.conf:1: [answer a]: an answer line needs a device" in r.stderr, r.stderr
    assert "bad.conf:5: numbers: unknown answer line field in [answer b]" in r.stderr, r.stderr
    assert "bad.conf:8: rings: 99 is out of range (1 to 20)" in r.stderr, r.stderr
    assert "[answer c]: device /dev/ttyS2 is also the modem of [phonebook isp]" in r.stderr, \
        r.stderr
    assert "callers must authenticate: set auth_users_file" in r.stderr, r.stderr
    good = tmp_path / "good.conf"
    good.write_text("auth_users_file = %s\n[answer hubmodem]\ndevice = /dev/ttyS1\n"
                    "rings = 3\n" % users_file(tmp_path))
    r = run_cli("show-config", "--config", str(good))
    assert r.returncode == 0, r.stderr
    block = r.stdout[r.stdout.index("[answer hubmodem]"):]
    assert "device = /dev/ttyS1" in block and "rings = 3" in block
    assert "answer_timeout = 1m" in block and "numbers" not in block


def test_large_messages_both_ways_at_line_speed(daemon, tmp_path, line):
    """Messages that take longer to cross the line than the reply timeout
    of their final dot: the relays pass the line's pace back to the SMTP
    clients (the hub's after ATRN, the branch's outbound), whose timer for
    the reply starts once the data has left, not when it was queued."""
    site_modem, hub_modem = line()
    # ~160 KB take 14 s at 115200 bps; what the relays, the pty and the
    # modem hold at the end crosses in about 4 s
    # plain SMTP both ways: XDMBATCH would compress the repeated lines away
    h = answering_hub(daemon, tmp_path, hub_modem.link, "smtp_data_done_timeout = 7s",
                      "batch_transfer = no")
    big_in = message("big held", body=("held " + "y" * 93 + "\r\n") * 1600)
    big_out = message("big out", body=("sent " + "z" * 93 + "\r\n") * 1600)
    assert send_message(h.port, "s@sender.example", ["bob@branch.example"], big_in).code == 250
    before = set(h.queue_ids())
    br = branch(daemon, tmp_path, site_modem.link)
    br.stop()
    br.config.write_text(br.config.read_text().replace(
        "hostname = gw.branch.example", "hostname = gw.branch.example\n"
        "smtp_data_done_timeout = 7s\nbatch_transfer = no"))
    br.start()
    assert send_message(br.port, "alice@branch.example", ["remote@other.example"],
                        big_out).code == 250
    t0 = time.monotonic()
    r = dial(br, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - t0 > 25  # 2 x 160 KB at 115200 bps: it did take the time
    assert wait_until(lambda: len(br.maildir_files("bob")) == 1, 10), (r.stdout, br.events())
    assert maildir_has(br.maildir_files("bob"), big_in) == 1
    new = [q for q in h.queue_ids() if q not in before]
    assert len(new) == 1 and big_out in (h.dir / "queue" / new[0]).read_bytes()
    assert br.queue_ids() == [] and not br.events_with(3002), br.events_with(3002)
