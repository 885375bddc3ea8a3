# XDMBATCH, the dialmail-to-dialmail transfer (docs/batch-protocol.md): a
# dialmail hub releasing held mail to a dialmail branch after ATRN uses it
# (checked on the wire through a proxy), a plain peer never sees it, lines
# cut at random offsets of the stream deliver every message exactly once and
# byte for byte (resumed from checkpoints), and corrupt or truncated frames
# and an unknown dictionary give clear errors and plain SMTP, nothing lost.
# Invariant: every process is stopped by PID, every wait is bounded.
import os
import random
import re
import struct
import subprocess
import time

import pytest

import batchwire
import direct
import mailcorpus
from dialup import MODEMSIM, dial
from direct import partial_files
from modem import ModemSim
from odmr import PASSWORD, USER, CutProxy, branch, cram, hub, serve_reversed
from smtpraw import SmtpRaw, send_message
from wait import wait_until



def held(h, msgs):
    for m in msgs:
        assert send_message(h.port, "s@sender.example", ["bob@branch.example"], m).code == 250


def maildir_bodies(br):
    return [f.read_bytes() for f in br.maildir_files("bob")]


def exactly_once(br, msgs):
    got = maildir_bodies(br)
    for m in msgs:
        want = m.replace(b"\r\n", b"\n")
        n = sum(g.endswith(want) for g in got)
        assert n == 1, (n, want[:200])
    assert len(got) == len(msgs)


def pair(daemon, tmp_path, msgs, *branch_top, graceful=False):
    # the branch offers XDMBATCH after ATRN only to a hub that listed it in
    # its own EHLO reply: the hub lists it to the branches in batch_networks
    h = hub(daemon, tmp_path, "batch_networks = 127.0.0.0/8")
    held(h, msgs)
    proxy = CutProxy(("127.0.0.1", h.odmr_port), None, every=True, graceful=graceful)
    br = branch(daemon, tmp_path, "127.0.0.1:%d" % proxy.port, top=branch_top)
    return h, br, proxy


def test_dialmail_pair_uses_batch_and_compresses(daemon, tmp_path):
    msgs = mailcorpus.messages(10, 3000)
    sizes = {}
    for mode in ("yes", "no"):
        sub = tmp_path / mode
        sub.mkdir()
        h, br, proxy = pair(daemon, sub, msgs, "batch_transfer = %s" % mode)
        try:
            r = dial(br)
            assert r.returncode == 0, r.stdout + r.stderr
            assert wait_until(lambda: len(br.maildir_files("bob")) == 10, 10), br.events()
            exactly_once(br, msgs)
            assert wait_until(lambda: h.queue_ids() == [], 5)
            up, down = bytes(proxy.up), bytes(proxy.down)
            if mode == "yes":
                assert re.search(rb"\r\n250[- ]XDMBATCH 1 DICT=1\r\n", up), up[:600]
                assert b"XDMBATCH DICT=1\r\n" in down and b"MAIL FROM" not in down
                assert b"250 2.0.0 XDMBATCH done: 10 queued" in up
                ev = br.events_with(2040)
                assert ev and ev[0]["messages"] == "10", ev
            else:
                assert b"XDMBATCH" not in up and b"MAIL FROM" in down
            sizes[mode] = (len(down), len(up))
        finally:
            proxy.stop()
    content = sum(len(m) for m in msgs)
    print("10 x 3 KB (%d bytes of content): plain SMTP %d down %d up; XDMBATCH %d down %d up; "
          "ratio %.2f" % (content, sizes["no"][0], sizes["no"][1], sizes["yes"][0],
                          sizes["yes"][1], sum(sizes["no"]) / sum(sizes["yes"])))
    assert sum(sizes["no"]) >= 3 * sum(sizes["yes"]), sizes


def big_message(seed, size):
    """A message with an attachment of random (hardly compressible) base64."""
    rnd = random.Random(seed)
    b64 = __import__("base64").b64encode(rnd.randbytes(size * 3 // 4)).decode()
    body = "\r\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    return ("From: <a@hub.example>\r\nTo: <bob@branch.example>\r\nSubject: attachment %d\r\n"
            "Message-ID: <att%d.%d@hub.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            "%s\r\n" % (seed, seed, rnd.randint(0, 1 << 30), body)).encode()


def test_resume_after_a_drop_in_the_attachment(daemon, tmp_path):
    att = big_message(7, 250000)
    # the batch stream of the attachment alone, as the hub makes it (same level,
    # dictionary and checkpoint size): about 196 KB
    stream = len(batchwire.segments(batchwire.message_records(
        "x.00000000", "s@sender.example", ["bob@branch.example"], att)))
    h, br, proxy = pair(daemon, tmp_path, [att], graceful=True)
    try:
        # cut the hub's stream when 80% of it has crossed (the greeting, EHLO,
        # AUTH, ATRN replies and the XDMBATCH command come before: about 500 bytes)
        proxy.limit = 500 + int(0.8 * stream)
        dial(br)
        ev = br.wait_event(2041, 10)
        assert ev and ev[0]["reason"] == "connection lost" and not br.events_with(2040), ev
        first_up, first_down = bytes(proxy.up), bytes(proxy.down)
        start = first_down.index(b"XDMBATCH DICT=1\r\n") + len(b"XDMBATCH DICT=1\r\n")
        cut = (len(first_down) - start) / stream
        assert 0.77 < cut < 0.83, cut
        # checkpoints were reported on the wire (those after the cut were not seen)
        assert re.search(rb"\r\nC \S+ 16384\r\n", first_up), first_up[-300:]
        partial = partial_files(br)
        assert len(partial) == 1, partial
        ckpt = partial[0].stat().st_size
        assert ckpt % 16384 == 0, ckpt
        # what is kept is the message as the hub sends it: its trace header, then ours
        kept = partial[0].read_bytes()
        head = kept.find(att[:100])
        assert head > 0 and att.startswith(kept[head:]), head
        # next call: the branch lists the checkpoint, the hub sends only the rest
        proxy.limit = None
        down0 = len(proxy.down)
        r = dial(br)
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_until(lambda: len(br.maildir_files("bob")) == 1, 10), br.events()
        exactly_once(br, [att])
        second_up = bytes(proxy.up)[len(first_up):]
        listed = re.findall(rb"250-CKPT \S+ (\d+)\r\n", second_up)
        assert listed and int(listed[0]) == ckpt, second_up[:500]
        # what had crossed and crosses again (the stream compresses evenly: random base64)
        total = head + len(att)
        crossed = int(cut * total)
        resent = max(0, crossed - ckpt)
        second_down = len(proxy.down) - down0
        print("250 KB attachment cut at %.1f%% of its stream: checkpoint at %d of %d, "
              "%d bytes crossed twice (%.1f%%), %d bytes on the wire in the second call"
              % (100 * cut, ckpt, total, resent, 100.0 * resent / len(att), second_down))
        assert resent <= 0.10 * len(att), (crossed, ckpt)
        assert second_down < 0.2 * stream + 0.1 * len(att), second_down
        assert partial_files(br) == []
        assert wait_until(lambda: h.queue_ids() == [], 5)
    finally:
        proxy.stop()


def test_lost_acknowledgement_is_not_queued_twice(daemon, tmp_path):
    """The branch queues the hub's messages, and the line drops before its
    A lines reach the hub: the next call brings them again, and the branch
    acknowledges them from its done markers (DIR/batch/<peer>/done/)
    without queueing them a second time."""
    msgs = mailcorpus.messages(2, 3000, seed=7)
    h, br, proxy = pair(daemon, tmp_path, msgs)
    try:
        proxy.up_cut = b"\r\nA "
        dial(br)
        assert wait_until(lambda: len(br.maildir_files("bob")) == 2, 10), br.events()
        assert b"\r\nA " not in bytes(proxy.up)
        assert len(h.queue_ids()) == 2  # the hub heard no acknowledgement
        markers = list((br.dir / "batch").glob("*/done/*"))
        assert len(markers) == 2, markers
        received = [e for e in br.events_with(2002) if "XDMBATCH" in e["text"]]
        proxy.up_cut = None
        r = dial(br)
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_until(lambda: h.queue_ids() == [], 10), h.events()
        assert re.search(rb"\r\nA \S+ \S+\r\n", bytes(proxy.up))
        again = [e for e in br.events_with(2002) if "XDMBATCH" in e["text"]]
        assert len(received) == 2 and again == received, again
        exactly_once(br, msgs)
    finally:
        proxy.stop()


def test_random_drops_deliver_everything_exactly_once(daemon, tmp_path):
    rounds = int(os.environ.get("BATCH_DROP_ROUNDS", "50"))
    rnd = random.Random(13)
    h, br, proxy = pair(daemon, tmp_path, [], "batch_checkpoint_size = 4K")
    sent = []
    try:
        for i in range(rounds):
            if not h.queue_ids():
                new = mailcorpus.messages(3, 3000, seed=100 + i) + [big_message(i, 40000)]
                held(h, new)
                sent += new
            # the stream is about 32 KB for a fresh lot; cut anywhere in it
            proxy.limit = rnd.randint(200, 40000)
            proxy.graceful = rnd.random() < 0.5  # the branch gets all before the cut, or not
            dial(br)
        proxy.limit = None
        for _ in range(5):
            if not h.queue_ids():
                break
            dial(br)
        assert wait_until(lambda: h.queue_ids() == [], 10), h.queue_ids()
        assert wait_until(lambda: len(br.maildir_files("bob")) == len(sent), 10)
        exactly_once(br, sent)
        assert br.events_with(2040)
        assert partial_files(br) == []
    finally:
        proxy.stop()


def batch_daemon(daemon, *extra, start=True):
    return daemon("hostname = hub.example", "local_domains = hub.example",
                  "local_recipients = bob", "batch_networks = 127.0.0.0/8", *extra, start=start)


def batch_end(c):
    """Reads A/N/C lines up to the batch's final reply: (lines, final)."""
    lines = []
    while True:
        line = c._line(10).decode().rstrip("\r\n")
        if line[:1].isdigit():
            return lines, line
        lines.append(line)


def go_ahead(c, dict_version=1):
    r = c.cmd("XDMBATCH DICT=%d" % dict_version)
    assert r.code == 250 and "go ahead" in r.text, r
    return r


def test_plain_peers_never_see_it(daemon, rec):
    # a client outside batch_networks: no keyword, and the command is refused
    d = daemon("hostname = hub.example", "local_domains = hub.example", "local_recipients = bob")
    with SmtpRaw(d.port) as c:
        ehlo = c.cmd("EHLO client.test")
        assert ehlo.code == 250 and not any("XDMBATCH" in l for l in ehlo.lines), ehlo
        assert c.cmd("XDMBATCH DICT=1").code == 502
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
    # a plain server (no keyword) gets plain SMTP from dialmail's client
    out = daemon("hostname = gw.branch.example", "[routes]", "* = smarthost 127.0.0.1:%d" % rec.port)
    assert send_message(out.port, "a@branch.example", ["x@remote.example"],
                        mailcorpus.message(4)).code == 250
    assert wait_until(lambda: sum(len(x.messages) for x in rec.sessions) == 1, 10), out.events()
    assert rec.sessions[0].messages[0].mode in ("DATA", "BDAT")
    assert not any(b"XDMBATCH" in x.client_bytes() for x in rec.sessions)


def test_corrupt_truncated_and_unknown_dictionary(daemon):
    d = batch_daemon(daemon)
    good = mailcorpus.messages(2, 3000)
    raw = (batchwire.message_records("a1.00000001", "s@x.example", ["bob@hub.example"], good[0])
           + batchwire.message_records("a2.00000002", "s@x.example", ["bob@hub.example"], good[1]))
    with SmtpRaw(d.port) as c:
        assert "XDMBATCH 1 DICT=1" in c.cmd("EHLO peer.example").lines
        # a dictionary this program does not have: 504, plain SMTP goes on
        r = c.cmd("XDMBATCH DICT=7")
        assert r.code == 504 and "dictionary 7" in r.text, r
        # garbage in place of zstd data
        go_ahead(c)
        c.send(struct.pack(">I", 8) + b"notzstd!" + batchwire.END)
        lines, final = batch_end(c)
        assert lines == [] and final.startswith("451 4.6.0 XDMBATCH aborted: decompression failed")
        # a stream made with the dictionary but announced without it
        go_ahead(c, 0)
        c.send(batchwire.segments(raw + batchwire.record("Z", b"")))
        lines, final = batch_end(c)
        assert lines == [] and "decompression failed" in final, final
        # a record of the second message whose checksum does not match
        bad = bytearray(raw + batchwire.record("Z", b""))
        bad[-20] ^= 1
        go_ahead(c)
        c.send(batchwire.segments(bytes(bad)))
        lines, final = batch_end(c)
        assert [l[:13] for l in lines] == ["A a1.00000001"], lines
        assert final == "451 4.6.0 XDMBATCH aborted: record checksum mismatch", final
        # truncated: the first message whole (again: a duplicate, dedup's job), the second
        # cut, no Z
        go_ahead(c)
        c.send(batchwire.segments(raw[:len(raw) - 500]))
        lines, final = batch_end(c)
        assert [l[:13] for l in lines] == ["A a1.00000001"], lines
        assert final.startswith("451 4.6.0 XDMBATCH aborted: the stream ended"), final
        # plain SMTP after all that, in the same session
        assert c.cmd("MAIL FROM:<s@x.example>").code == 250
        assert c.cmd("RCPT TO:<bob@hub.example>").code == 250
    aborted = d.events_with(2041)
    assert len(aborted) == 4 and all(e["peer"] == "peer.example" for e in aborted), aborted
    # the first message was acknowledged twice (two batches), the second time
    # from its done marker: queued and delivered once, no dedup needed
    assert wait_until(lambda: len(d.maildir_files("bob")) == 1, 10)
    assert not d.events_with(2023)
    assert d.maildir_files("bob")[0].read_bytes().endswith(good[0].replace(b"\r\n", b"\n"))


def test_hub_falls_back_to_plain_smtp(daemon, tmp_path):
    """A peer without the keyword gets plain SMTP; one offering another
    dictionary version gets a batch without dictionary; a batch the peer
    aborts is followed by plain SMTP in the same session, nothing lost."""
    msgs = mailcorpus.messages(3, 3000)
    for offer, want in ((None, None), (1, "XDMBATCH DICT=1"), (2, "XDMBATCH DICT=0")):
        (tmp_path / str(offer)).mkdir()
        h = hub(daemon, tmp_path / str(offer))
        held(h, msgs)
        cmds, batches = [], []
        with SmtpRaw(h.odmr_port) as c:
            c.cmd("EHLO branch.example")
            assert cram(c, USER, PASSWORD).code == 235
            assert c.cmd("ATRN branch.example").code == 250
            got = serve_reversed(c, batch_abort=offer, commands=cmds, batches=batches)
        assert [x for x in cmds if x.startswith("XDMBATCH")] == ([want] if want else []), cmds
        if offer == 2:  # made without a dictionary: zstd reads it without one
            raw = subprocess.run(["zstd", "-d", "-c"], input=batches[0], check=True,
                                 stdout=subprocess.PIPE).stdout
            assert raw.startswith(b"M") and raw.endswith(batchwire.record("Z", b""))
        # then plain SMTP in the same session
        assert [x[:4] for x in cmds].count("DATA") == 3 and got[-1] == "QUIT", cmds
        for m in msgs:
            assert sum(g[1].endswith(m) for g in got[:-1]) == 1
        assert wait_until(lambda: h.queue_ids() == [], 5), h.queue_ids()


def test_stale_and_unknown_checkpoints_are_dropped(daemon, tmp_path):
    msgs = mailcorpus.messages(2, 3000)
    h, br, proxy = pair(daemon, tmp_path, msgs)
    try:
        part = br.dir / "batch" / "hub.example"
        part.mkdir(parents=True)
        (part / "0661F00000000000000000.deadbeef").write_bytes(b"x" * 16384)  # hub has no such
        old = part / "0661F00000000000000001.cafebabe"
        old.write_bytes(b"y" * 16384)
        os.utime(old, (1, 1))  # long expired
        r = dial(br)
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_until(lambda: len(br.maildir_files("bob")) == 2, 10), br.events()
        exactly_once(br, msgs)
        up = bytes(proxy.up)
        assert b"250-CKPT 0661F00000000000000000.deadbeef 16384\r\n" in up, up[:800]
        assert b"cafebabe" not in up  # expired before the batch listed it
        assert [p for p in part.iterdir() if p.is_file()] == []  # done/ holds markers
    finally:
        proxy.stop()


def test_branch_outbound_over_ip_urgent_and_small_first(daemon, tmp_path, rec):
    """A branch's outbound mail to a hub that lists it in batch_networks:
    one batch, in the order urgent, then normal by size, then non-urgent."""
    # the hub is down while the mail is queued: the flush then sends it all in one batch
    h = batch_daemon(daemon, "[routes]", "* = smarthost 127.0.0.1:%d" % rec.port, start=False)
    br = daemon("hostname = gw.branch.example", "queue_run_interval = 1h",
                "[routes]", "* = smarthost 127.0.0.1:%d" % h.port, start=False)
    bodies = {"big": 20000, "small": 1000, "urgent-big": 30000, "low": 500, "mid": 5000}
    msgs = {}
    for name, size in bodies.items():
        prio = {"urgent-big": ["Priority: urgent"], "low": ["Priority: non-urgent"]}.get(name, [])
        msgs[name] = ("Subject: %s\r\nMessage-ID: <%s@branch.example>\r\n%s\r\n%s\r\n" % (
            name, name, "".join(p + "\r\n" for p in prio), ("z" * 70 + "\r\n") * (size // 72))).encode()
    br.start()
    for name in ("big", "small", "urgent-big", "low", "mid"):
        assert send_message(br.port, "a@branch.example", ["x@remote.example"],
                            msgs[name]).code == 250
    assert wait_until(lambda: len(br.events_with(3002)) == 5, 10), br.events()
    h.start()
    br.cli("flush", "--dir", str(br.dir))
    ev = h.wait_event(2040, 10)
    assert ev and ev[0]["messages"] == "5", h.events()
    order = [e["message-id"] for e in h.events_with(2002)]
    assert order == ["<urgent-big@branch.example>", "<small@branch.example>",
                     "<mid@branch.example>", "<big@branch.example>",
                     "<low@branch.example>"], order
    assert wait_until(lambda: br.queue_ids() == [], 10), br.events()


# --- on a modem line: carrier loss (modemsim) instead of a proxy -------------------


@pytest.fixture
def line(tmp_path):
    """line(hub, *modemsim args): a fast modemsim call to the hub's ODMR port
    (data = direct), stopped by PID at the end."""
    sims = []

    def start(h, *args):
        sim = ModemSim(MODEMSIM, tmp_path / ("ttyB%d" % len(sims)), "--bps", "460800",
                       "--connect-delay", "0", "--connect", "127.0.0.1:%d" % h.odmr_port, *args)
        sims.append(sim)
        return sim.start()
    yield start
    for s in sims:
        s.stop()


def queued_at(h, before, n):
    """The ids of the n messages queued at h since the ids `before`."""
    assert wait_until(lambda: len(set(h.queue_ids()) - before) >= n, 5)
    return set(h.queue_ids()) - before


@pytest.mark.skipif(not MODEMSIM.exists(), reason="make build/modemsim first")
def test_carrier_drops_at_random_offsets(daemon, tmp_path, line):
    """modemsim drops the carrier at random offsets of the call (both
    directions batched: the branch's mail up, then ATRN and the held mail
    down), round after round: every message arrives exactly once, byte for
    byte, the resumed ones included, and no partial file is left."""
    rounds = int(os.environ.get("BATCH_DROP_ROUNDS", "50"))
    h = hub(daemon, tmp_path, "batch_networks = 127.0.0.0/8")  # modemsim is on loopback
    sim = line(h, "--drop-random", "300:28000", "--drop-chance", "0.8", "--seed", "13")
    br = direct.branch(daemon, tmp_path, sim.link, top=("batch_checkpoint_size = 4K",))
    down, up, mine = [], [], set()
    with_partial = 0  # calls that began with partial data at either end: resumes
    for i in range(rounds):
        if not mine & set(h.queue_ids()):
            new = mailcorpus.messages(2, 3000, seed=200 + i) + [big_message(100 + i, 30000)]
            before = set(h.queue_ids())
            held(h, new)
            mine |= queued_at(h, before, len(new))
            down += new
        if i % 5 == 0:
            m = big_message(500 + i, 20000 if i % 10 else 3000).replace(
                b"bob@branch.example", b"remote@other.example")
            assert send_message(br.port, "alice@branch.example", ["remote@other.example"],
                                m).code == 250
            up.append(m)
        if partial_files(br) or partial_files(h):
            with_partial += 1
        dial(br)
    lost = sim.wait_transcript(r" carrier lost after \d+ bytes", 0)
    for _ in range(10):  # calls without a drop are 1 in 5 or so: finish the work
        if not (mine & set(h.queue_ids())) and not br.queue_ids():
            break
        dial(br)
    assert wait_until(lambda: not mine & set(h.queue_ids()), 10), h.queue_ids()
    assert wait_until(lambda: len(br.maildir_files("bob")) >= len(down), 10)
    exactly_once(br, down)
    assert wait_until(lambda: br.queue_ids() == [], 10), br.events()
    at_hub = [(h.dir / "queue" / q).read_bytes() for q in set(h.queue_ids()) - mine]
    for m in up:
        assert sum(m in x for x in at_hub) == 1, m[:120]
    print("carrier loss in %d of %d calls; %d messages down, %d up; %d calls began with "
          "partial data" % (len(lost), len(sim.wait_transcript(r" hangup ", 0)), len(down),
                            len(up), with_partial))
    assert len(lost) >= rounds // 2, len(lost)
    assert with_partial >= rounds // 10, with_partial
    assert br.events_with(2040) and h.events_with(2040)
    assert partial_files(br) == [] and partial_files(h) == []


@pytest.mark.skipif(not MODEMSIM.exists(), reason="make build/modemsim first")
def test_partial_data_expires(daemon, tmp_path, line):
    """A message cut by a carrier loss and not continued within
    batch_partial_expire: its partial data is deleted when the next batch
    starts, and the message comes again whole."""
    att = big_message(9, 80000)
    h = hub(daemon, tmp_path, "batch_networks = 127.0.0.0/8")
    held(h, [att])
    sim = line(h, "--script", "DROP:40000,CONNECT")
    br = direct.branch(daemon, tmp_path, sim.link, top=("batch_partial_expire = 2s",))
    dial(br)
    assert br.wait_event(2041, 10), br.events()
    part = partial_files(br)
    assert len(part) == 1 and part[0].stat().st_size >= 16384, part
    time.sleep(3)
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_until(lambda: len(br.maildir_files("bob")) == 1, 10), br.events()
    exactly_once(br, [att])
    assert not part[0].exists()
    log = br.log.read_text(errors="replace")
    assert "batch: partial %s expired" % part[0] in log, log[-2000:]
