# data = direct: a dialmail branch dials modemsim, whose data path leads to a
# dialmail hub's ODMR port, and speaks SMTP over the serial line itself:
# greeting, EHLO, AUTH, its outbound mail, ATRN, the held mail back, QUIT,
# hang-up. Invariant: every process is stopped by PID, every wait is bounded.
import pytest

from dialup import MODEMSIM, dial, ledger
from direct import branch, exchange, maildir_has, partial_files
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
    part = partial_files(br)
    assert len(part) == 1 and part[0].stat().st_size >= 16384, part
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: len(br.maildir_files("bob")) == 2, 10), br.events()
    for b in bodies:
        assert maildir_has(br.maildir_files("bob"), b) == 1
    assert partial_files(br) == []
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


# --- XDMBATCH DUPLEX: both directions at once (docs/batch-protocol.md 12) -----------


def duplex_hub(daemon, tmp_path, *extra):
    """A hub that takes the branch's batch: modemsim hands the call over
    from loopback (batch_networks), as an answered call would be."""
    return hub(daemon, tmp_path, "batch_networks = 127.0.0.0/8", *extra)


def attachments(seed, n, lines=800):
    import base64
    import random
    rnd = random.Random(seed)
    return [message("att%d-%d" % (seed, i), body="\r\n".join(
        base64.b64encode(rnd.randbytes(57)).decode() for _ in range(lines))) for i in range(n)]


def test_duplex_both_directions_at_once(daemon, tmp_path, modems):
    """One exchange carries the outbound and the held mail, byte-exact,
    exactly once, no ATRN; the hub ends the call (221) without a QUIT. The
    second call knows the hub: EHLO and AUTH go before the greeting, the
    command right behind the CRAM-MD5 answer."""
    h = duplex_hub(daemon, tmp_path)
    m = modem(modems, tmp_path, h.odmr_port)
    br, r, _ = exchange(daemon, tmp_path, h, m.link)
    steps = [e["text"] for e in br.events_with(4124)]
    assert any("XDMBATCH DUPLEX" in t for t in steps), steps
    assert any("greeting" in t for t in steps), steps
    assert not any("reversing" in e["text"] for e in h.events_with(2031)), h.events_with(2031)
    assert h.events_with(2040) and br.events_with(2040), (h.events(), br.events())
    led = ledger(br)[-1]
    assert led["result"] == "ok" and led["messages_out"] == 1 and led["messages_in"] == 2, led
    assert (br.dir / "peers" / "line-hubline").exists()
    # Second call, mail both ways again.
    held = message("held again", body="again\r\n..dot")
    assert send_message(h.port, "s@sender.example", ["bob@branch.example"], held).code == 250
    out = message("out again", body="out again")
    assert send_message(br.port, "alice@branch.example", ["remote@other.example"],
                        out).code == 250
    n4124 = len(br.events_with(4124))
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: len(br.maildir_files("bob")) == 3, 10), br.events()
    assert maildir_has(br.maildir_files("bob"), held.replace(b"\r\n..", b"\r\n.")) == 1
    assert br.queue_ids() == [] and wait_until(lambda: len(h.queue_ids()) == 2, 5)
    steps = [e["text"] for e in br.events_with(4124)[n4124:]]
    assert any("XDMBATCH DUPLEX" in t for t in steps), steps
    assert not any("authenticated" in t for t in steps), steps  # AUTH's 235 read by the exchange
    assert ledger(br)[-1]["result"] == "ok", ledger(br)[-1]


def test_duplex_drop_in_the_middle_resumes(daemon, tmp_path, modems):
    """The carrier drops in the middle of the exchange, both batches under
    way: nothing acknowledged is lost, nothing is delivered twice, the next
    call resumes and delivers the rest."""
    h = duplex_hub(daemon, tmp_path)
    held = attachments(7, 2)
    for b in held:
        assert send_message(h.port, "s@sender.example", ["bob@branch.example"], b).code == 250
    before = set(h.queue_ids())
    m = modem(modems, tmp_path, h.odmr_port, "--script", "DROP:40000,CONNECT")
    br = branch(daemon, tmp_path, m.link)
    out = attachments(8, 2)
    for b in out:
        assert send_message(br.port, "alice@branch.example", ["remote@other.example"],
                            b).code == 250
    dial(br)
    assert br.wait_event(4124, 10, pred=lambda e: "dropped" in e["text"] or "ended" in e["text"]
                         or "lost" in e["text"]), br.events()
    assert any("XDMBATCH DUPLEX" in e["text"] for e in br.events_with(4124))
    assert len(br.maildir_files("bob")) < 2 or br.queue_ids(), "the drop came too late"
    partial = partial_files(br) + partial_files(h)
    assert partial and all(p.stat().st_size >= 16384 for p in partial), partial  # checkpoints
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: len(br.maildir_files("bob")) == 2, 10), br.events()
    for b in held:
        assert maildir_has(br.maildir_files("bob"), b) == 1
    assert br.queue_ids() == [], br.events()
    assert wait_until(lambda: len(set(h.queue_ids()) - before) == 2
                      and not (before & set(h.queue_ids())), 10), h.queue_ids()
    got = [(h.dir / "queue" / q).read_bytes() for q in set(h.queue_ids()) - before]
    for b in out:
        assert sum(b in g for g in got) == 1, "outbound message not exactly once at the hub"
    # resumed from those checkpoints: no partial data is left on either side
    assert partial_files(br) + partial_files(h) == []


def test_duplex_off_at_the_hub_falls_back(daemon, tmp_path, modems):
    """A hub without DUPLEX (batch_duplex = no, as an older dialmail): the
    branch sends its batch, then ATRN, one after the other, as before."""
    h = duplex_hub(daemon, tmp_path, "batch_duplex = no")
    br, r, _ = exchange(daemon, tmp_path, h, modem(modems, tmp_path, h.odmr_port).link)
    steps = [e["text"] for e in br.events_with(4124)]
    assert not any("XDMBATCH DUPLEX" in t for t in steps), steps
    assert any("reversing" in e["text"] for e in h.events_with(2031)), h.events_with(2031)
    assert h.events_with(2040) and br.events_with(2040), (h.events(), br.events())
    assert ledger(br)[-1]["result"] == "ok", ledger(br)[-1]
    # the second call sends EHLO and AUTH early, then waits for 235 as before
    held = message("held again", body="again")
    assert send_message(h.port, "s@sender.example", ["bob@branch.example"], held).code == 250
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: len(br.maildir_files("bob")) == 3, 10), br.events()
    assert maildir_has(br.maildir_files("bob"), held) == 1
    assert ledger(br)[-1]["result"] == "ok", ledger(br)[-1]


def test_duplex_early_auth_refused_forgets_the_hub(daemon, tmp_path, modems):
    """The password changed at the hub since the last call: the early AUTH
    (with the command behind it) is refused, the call fails with that
    reason, nothing is lost, and the next call waits for each reply again."""
    h = duplex_hub(daemon, tmp_path)
    m = modem(modems, tmp_path, h.odmr_port)
    br, _, _ = exchange(daemon, tmp_path, h, m.link)
    peer = br.dir / "peers" / "line-hubline"
    assert peer.exists()
    users = tmp_path / "odmr-users"
    good = users.read_text()
    users.write_text(good.replace("alice {PLAIN}", "alice {PLAIN}changed-"))
    h.restart()
    out = message("waits", body="waits for the right password")
    assert send_message(br.port, "alice@branch.example", ["remote@other.example"],
                        out).code == 250
    dial(br)
    assert br.wait_event(4124, 10, pred=lambda e: "AUTH refused" in e["text"]), \
        br.events_with(4124)
    led = ledger(br)[-1]
    assert "failed" in led["hangup_reason"] and led["messages_out"] == 0, led
    assert not peer.exists() and len(br.queue_ids()) == 1
    users.write_text(good)
    h.restart()
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: br.queue_ids() == [], 10), br.events()
    assert peer.exists() and "QUIT" in ledger(br)[-1]["hangup_reason"], ledger(br)[-1]
