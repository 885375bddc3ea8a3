# XDMBATCH, the dialmail-to-dialmail transfer (docs/batch-protocol.md): a
# dialmail hub releasing held mail to a dialmail branch after ATRN uses it
# (checked on the wire through a proxy), a plain peer never sees it, lines
# cut at random offsets of the stream deliver every message exactly once and
# byte for byte (resumed from checkpoints), and corrupt or truncated frames
# and an unknown dictionary give clear errors and plain SMTP, nothing lost.
# Invariant: every process is stopped by PID, every wait is bounded.
import random
import re
import socket
import struct
import subprocess
import zlib
from pathlib import Path

import mailcorpus
from dialup import dial
from odmr import CutProxy, branch, hub
from smtpraw import SmtpRaw, send_message
from wait import wait_until

REPO = Path(__file__).resolve().parents[2]
DICT = REPO / "src" / "smtp" / "batch_dict" / "mailhdr-1.zdict"


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


def pair(daemon, tmp_path, msgs, *branch_top):
    h = hub(daemon, tmp_path)
    held(h, msgs)
    proxy = CutProxy(("127.0.0.1", h.odmr_port), None, every=True)
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
