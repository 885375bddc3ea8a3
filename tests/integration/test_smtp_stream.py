# Message data streamed to the queue's temp file (issue 11, item 1): the
# first 64 KB of a message stay in memory, the rest goes to DIR/tmp/<id> as
# it arrives. What a user can check: the queue file holds exactly the
# unstuffed content behind the trace header, its size and checksum records
# agree with it, a message in progress is a growing file in tmp/ (not
# memory in the daemon), and what is refused or abandoned leaves nothing.
import re
import time
import zlib

from procinfo import rss_kb, sanitized
from smtpraw import SmtpRaw, queued_id
from wait import wait_until

HELD = ("local_domains = localhost", "mynetworks = 127.0.0.0/8",
        "max_message_size = 20M", "[routes]", "* = hold")


def queue_file(d, qid):
    """(envelope records, content) of DIR/queue/<qid>, after checking the
    end record's size and CRC-32 against the file as docs/queue-format.md
    describes."""
    raw = (d.dir / "queue" / qid).read_bytes()
    m = re.search(rb"\nsize (\d+)\n", raw)
    assert m, raw[:400]
    size = int(m.group(1))
    start = m.end()
    content = raw[start:start + size]
    end = raw[start + size:]
    em = re.fullmatch(rb"\nEND (\d+) ([0-9a-f]{8})\n", end)
    assert em, end[:100]
    assert int(em.group(1)) == size
    assert int(em.group(2), 16) == zlib.crc32(raw[:start + size])
    records = raw[:m.start()].decode().split("\n")
    return records, content


def body_lines(n, dot_every=7):
    """n CRLF lines, every dot_every-th starting with a dot (as the
    message has it, before dot-stuffing)."""
    out = []
    for i in range(n):
        lead = "." if i % dot_every == 0 else ""
        out.append("%sline %06d of a long message, some text to fill it up\r\n" % (lead, i))
    return "".join(out).encode()


def stuffed(content):
    return re.sub(rb"(^|\r\n)\.", rb"\1..", content)


def envelope(c, rcpt="bob@far.example"):
    assert c.cmd("EHLO client.test").code == 250
    assert c.cmd("MAIL FROM:<alice@client.test>").code == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt).code == 250


def send_in_pieces(c, data, piece=65521):
    for off in range(0, len(data), piece):
        c.send(data[off:off + piece])


def tmp_files(d):
    try:
        return sorted((d.dir / "tmp").iterdir())
    except FileNotFoundError:
        return []


def test_large_data_streamed_byte_exact(daemon):
    """3 MB with dot-stuffed lines, sent in odd-sized writes: the queue file
    holds the unstuffed content exactly, behind the Received header; the
    Message-ID from the header section is in the envelope."""
    d = daemon(*HELD)
    content = (b"Message-ID: <big@client.test>\r\nSubject: big\r\n\r\n" + body_lines(60000))
    assert len(content) > 3 * 1000 * 1000
    with d.smtp() as c:
        envelope(c)
        assert c.cmd("DATA").code == 354
        send_in_pieces(c, stuffed(content) + b".\r\n")
        r = c.reply(timeout=60)
        assert r.code == 250, r
        qid = queued_id(r)
        assert c.cmd("QUIT").code == 221
    records, got = queue_file(d, qid)
    assert "message-id <big@client.test>" in records
    assert got.startswith(b"Received: ")
    assert got.endswith(content)
    head = got[:len(got) - len(content)]
    assert qid.encode() in head and head.count(b"\r\n") <= 4, head
    assert tmp_files(d) == []


def test_large_bdat_streamed_without_final_crlf(daemon):
    """BDAT chunks of 300 KB (dots unstuffed, as BDAT has them): the last
    one ends without CRLF and gets one; the whole is exact."""
    d = daemon(*HELD)
    body = body_lines(25000)
    content = b"Subject: chunks\r\n\r\n" + body + b"no final line end"
    chunks = [content[i:i + 300000] for i in range(0, len(content), 300000)]
    with d.smtp() as c:
        envelope(c)
        for i, ch in enumerate(chunks):
            last = i == len(chunks) - 1
            c.send(b"BDAT %d%s\r\n" % (len(ch), b" LAST" if last else b"") + ch)
            r = c.reply(timeout=60)
            assert r.code == 250, r
        qid = queued_id(r)
    _, got = queue_file(d, qid)
    assert got.endswith(content + b"\r\n")
    assert tmp_files(d) == []


def test_messages_in_progress_live_on_disk_not_in_memory(daemon):
    """Eight clients in the middle of 6 MB each: each has a temp file of
    about that size, and the daemon's memory did not grow with them. Then
    four finish (queued, byte-exact) and four hang up (their files go)."""
    d = daemon(*HELD)
    content = b"Subject: in progress\r\n\r\n" + body_lines(120000)
    wire = stuffed(content)
    assert len(wire) > 6 * 1024 * 1024
    clients = []
    try:
        for _ in range(8):
            c = SmtpRaw(d.port, timeout=60)
            envelope(c)
            assert c.cmd("DATA").code == 354
            clients.append(c)
        rss0 = rss_kb(d.pid)
        for c in clients:
            send_in_pieces(c, wire)
        # All in but the stream's last unwritten buffer (16 KB).
        full = wait_until(lambda: len([f for f in tmp_files(d)
                                       if f.stat().st_size >= len(content) - 16384]) == 8, 60)
        assert full, [f.stat().st_size for f in tmp_files(d)]
        grown = rss_kb(d.pid) - rss0
        if not sanitized(d.pid):
            # 48 MB of message data arrived; a session keeps at most 64 KB.
            assert grown < 8 * 1024, "RSS grew by %d KB" % grown
        ids = []
        for c in clients[:4]:
            c.send(b".\r\n")
            r = c.reply(timeout=60)
            assert r.code == 250, r
            ids.append(queued_id(r))
        for c in clients[4:]:
            c.close()
    finally:
        for c in clients:
            c.close()
    assert wait_until(lambda: tmp_files(d) == [], 10), tmp_files(d)
    assert sorted(d.queue_ids()) == sorted(ids)
    for qid in ids:
        _, got = queue_file(d, qid)
        assert got.endswith(content)


def test_too_big_while_streaming_552_and_nothing_left(daemon):
    """Over max_message_size after the spill to disk: 552 at the end of
    data, the temp file removed, the session goes on."""
    d = daemon("local_domains = localhost", "mynetworks = 127.0.0.0/8",
               "max_message_size = 1M", "[routes]", "* = hold")
    content = b"Subject: too big\r\n\r\n" + body_lines(40000)
    with d.smtp() as c:
        envelope(c)
        assert c.cmd("DATA").code == 354
        send_in_pieces(c, stuffed(content) + b".\r\n")
        r = c.reply(timeout=60)
        assert r.code == 552, r
        assert c.cmd("NOOP").code == 250
        assert tmp_files(d) == []
    assert d.queue_ids() == []
    assert d.wait_event(2013)


def test_bare_lf_after_spill_refused_and_removed(daemon):
    """A bare LF 1 MB into the message (past the spill): refused with 550
    at the end of data, nothing queued, no temp file."""
    d = daemon(*HELD)
    bad = body_lines(20000) + b"bare\nline feed\r\n" + body_lines(100)
    with d.smtp() as c:
        envelope(c)
        assert c.cmd("DATA").code == 354
        send_in_pieces(c, b"Subject: bad\r\n\r\n" + stuffed(bad) + b".\r\n")
        r = c.reply(timeout=60)
        assert r.code == 550 and "bare CR or LF" in r.text, r
        assert c.cmd("QUIT").code == 221
    time.sleep(0.2)
    assert tmp_files(d) == []
    assert d.queue_ids() == []
    assert d.wait_event(4193)
