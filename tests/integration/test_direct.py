# data = direct: a dialmail branch dials modemsim, whose data path leads to a
# dialmail hub's ODMR port, and speaks SMTP over the serial line itself:
# greeting, EHLO, AUTH, its outbound mail, ATRN, the held mail back, QUIT,
# hang-up. Invariant: every process is stopped by PID, every wait is bounded.
import pytest

from dialup import MODEMSIM, dial, ledger
from direct import branch, exchange, maildir_has
from modem import ModemSim
from odmr import CutProxy, hub, tls_hub
from smtpraw import message, send_message
from wait import wait_until

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


def hub_queue_bodies(h):
    out = []
    for qid in h.queue_ids():
        out.append((h.dir / "queue" / qid).read_bytes() if (h.dir / "queue" / qid).exists()
                   else b"")
    return out


def test_outbound_then_atrn_on_one_circuit(daemon, tmp_path, modems):
    h = hub(daemon, tmp_path)
    br, r, _ = exchange(daemon, tmp_path, h, modem(modems, tmp_path, h.odmr_port).link)
    assert br.events_with(3001) and "over the line" in br.events_with(3001)[0]["text"]
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
    # Plain SMTP (the drop is placed in its bytes); test_batch.py drops XDMBATCH.
    br = branch(daemon, tmp_path, m.link, top=("batch_transfer = no",))
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



def test_carrier_lost_mid_batch_resumes_from_checkpoint(daemon, tmp_path, modems):
    """XDMBATCH on the line (docs/batch-protocol.md): the carrier drops in
    the middle of the held mail; the next call resumes the message that was
    cut from the branch's checkpoint, and everything arrives once."""
    import base64
    import random
    rnd = random.Random(5)
    h = hub(daemon, tmp_path, "batch_networks = 127.0.0.0/8")  # modemsim hands over on loopback
    bodies = [message("att%d" % i, body="\r\n".join(
        base64.b64encode(rnd.randbytes(57)).decode() for _ in range(800))) for i in range(2)]
    for b in bodies:
        assert send_message(h.port, "s@sender.example", ["bob@branch.example"], b).code == 250
    # greeting, EHLO, AUTH, ATRN: under 1 KB; then about 62 KB of compressed batch
    m = modem(modems, tmp_path, h.odmr_port, "--script", "DROP:40000,CONNECT")
    br = branch(daemon, tmp_path, m.link)
    dial(br)
    assert br.wait_event(2041, 10), br.events()
    part = list((br.dir / "batch" / "hub.example").iterdir())
    assert len(part) == 1 and part[0].stat().st_size >= 16384, part
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: len(br.maildir_files("bob")) == 2, 10), br.events()
    for b in bodies:
        assert maildir_has(br.maildir_files("bob"), b) == 1
    assert list((br.dir / "batch" / "hub.example").iterdir()) == []
    assert wait_until(lambda: h.queue_ids() == [], 5)
    assert br.events_with(2040), br.events()


# --- STARTTLS on the line -------------------------------------------------------------


def test_starttls_on_the_line(daemon, tmp_path, modems, pki):
    h = tls_hub(daemon, tmp_path, pki)
    t = CutProxy(("127.0.0.1", h.odmr_port), None)  # keeps the call's bytes
    try:
        br, _, data = exchange(daemon, tmp_path, h, modem(modems, tmp_path, t.port).link,
                               "atrn_tls = required", "atrn_ca = %s" % pki["ca"],
                               "atrn_host = localhost")
    finally:
        t.stop()
    assert all(b"with ESMTPS" in f.read_bytes() for f in br.maildir_files("bob"))  # under TLS
    assert b"with ESMTPSA" in data, data
    steps = [e["text"] for e in br.events_with(4124) if "TLS started" in e["text"]]
    assert len(steps) == 1 and "certificate verified" in steps[0], br.events_with(4124)
    assert ledger(br)[-1]["result"] == "ok"
    # On the line: the greeting, EHLO and STARTTLS in clear, then only TLS.
    up, down = bytes(t.up), bytes(t.down)
    assert up.startswith(b"EHLO gw.branch.example\r\nSTARTTLS\r\n"), up[:80]
    clear_end = down.index(b"\r\n", down.index(b"\r\n220 ") + 2) + 2  # the 220 to STARTTLS
    assert b"ATRN" in down[:clear_end]  # the first EHLO reply, in clear
    for secret in (b"secret", b"AUTH", b"ATRN", b"MAIL FROM", b"bob@branch.example",
                   b"remote@other.example"):
        assert secret not in up and secret not in down[clear_end:], secret
    assert len(down) - clear_end > 2000  # the held mail did cross, encrypted


def test_starttls_on_the_line_wrong_ca(daemon, tmp_path, modems, pki):
    h = tls_hub(daemon, tmp_path, pki)
    assert send_message(h.port, "s@sender.example", ["bob@branch.example"],
                        message("stays held")).code == 250
    m = modem(modems, tmp_path, h.odmr_port)
    br = branch(daemon, tmp_path, m.link, "atrn_tls = required",
                "atrn_ca = %s" % pki["other_ca"])
    assert send_message(br.port, "alice@branch.example", ["remote@other.example"],
                        message("stays queued")).code == 250
    dial(br)
    ev = br.wait_event(4124, 10, pred=lambda e: "does not verify" in e["text"])
    assert ev and "nothing sent" in ev[0]["text"], br.events()
    assert len(br.queue_ids()) == 1 and br.maildir_files("bob") == []
    assert len(h.queue_ids()) == 1 and not h.events_with(2031)
