# CHUNKING (RFC 3030) in the SMTP server: BDAT chunks as a raw client sends
# them, the replies on the wire, and the bytes that land in the Maildir.
# BDAT content is raw (no dot-stuffing) but must still be strict CRLF text.
import re

from smtpraw import queued_id
from wait import wait_until

LOCAL = ("hostname = mx.test.example", "local_domains = example.org",
         "local_recipients = alice, bob")


def envelope(c, rcpt="alice@example.org"):
    assert c.cmd("EHLO client.test").code == 250
    assert c.cmd("MAIL FROM:<a@client.test>").code == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt).code == 250


def bdat(size, last=False):
    return ("BDAT %d%s\r\n" % (size, " LAST" if last else "")).encode()


def delivered(d, user="alice", n=1):
    files = wait_until(lambda: d.maildir_files(user) if len(d.maildir_files(user)) >= n else [],
                       10)
    assert len(files) == n, files
    return [f.read_bytes() for f in files]


def test_ehlo_advertises_chunking_last(daemon):
    """CHUNKING is the last of the base extensions; only DSN (RFC 3461),
    added later, follows it."""
    d = daemon(*LOCAL)
    with d.smtp() as c:
        r = c.cmd("EHLO client.test")
        assert r.lines[-2:] == ["CHUNKING", "DSN"], r


def test_pipelined_chunks_byte_exact(daemon):
    """Three chunks in one write, the last one LAST: one 250 per chunk, the
    content (with lines starting with dots, which BDAT does not stuff) is
    stored exactly."""
    d = daemon(*LOCAL)
    part1 = b"Subject: chunked\r\nMessage-ID: <chunk1@client.test>\r\n\r\nfirst line\r\n"
    part2 = b".leading dot stays\r\n..two dots stay\r\n.\r\nafter a lone dot\r\n"
    part3 = b"\xc3\xa9 8-bit line\r\n"
    with d.smtp() as c:
        envelope(c)
        c.send(bdat(len(part1)) + part1 + bdat(len(part2)) + part2 +
               bdat(len(part3), last=True) + part3)
        r1, r2, r3 = c.reply(), c.reply(), c.reply()
        assert r1.code == 250 and ("%d octets" % len(part1)) in r1.text, r1
        assert r2.code == 250 and ("%d octets" % len(part2)) in r2.text, r2
        assert r3.code == 250, r3
        queued_id(r3)
        assert c.cmd("QUIT").code == 221
    (got,) = delivered(d)
    content = (part1 + part2 + part3).replace(b"\r\n", b"\n")
    assert got.endswith(content), got
    head = got[: len(got) - len(content)]
    # Only our trace headers precede the client's bytes.
    names = re.findall(rb"(?m)^([A-Za-z-]+):", head)
    assert names == [b"Return-Path", b"Delivered-To", b"Received"], head
    assert b"with ESMTP" in head


def test_bdat_zero_last_ends_the_message(daemon):
    d = daemon(*LOCAL)
    msg = b"Subject: zero last\r\nMessage-ID: <z@client.test>\r\n\r\nbody\r\n"
    with d.smtp() as c:
        envelope(c)
        c.send(bdat(len(msg)) + msg)
        assert c.reply().code == 250
        r = c.cmd("BDAT 0 LAST")
        assert r.code == 250 and "queued as" in r.text, r
    (got,) = delivered(d)
    assert got.endswith(msg.replace(b"\r\n", b"\n"))


def test_content_without_final_crlf_gets_one(daemon):
    d = daemon(*LOCAL)
    msg = b"Subject: no final crlf\r\nMessage-ID: <n@client.test>\r\n\r\nlast line"
    with d.smtp() as c:
        envelope(c)
        c.send(bdat(len(msg), last=True) + msg)
        assert c.reply().code == 250
    (got,) = delivered(d)
    assert got.endswith(b"\n\nlast line\n"), got


def test_bdat_before_rcpt_is_503_and_the_chunk_is_consumed(daemon):
    """The chunk's octets are read and thrown away, never run as commands."""
    d = daemon(*LOCAL)
    payload = b"MAIL FROM:<evil@x>\r\nRCPT TO:<alice@example.org>\r\n"
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(bdat(len(payload)) + payload)
        r = c.reply()
        assert r.code == 503 and "MAIL" in r.text, r
        # Had the payload run as commands, RCPT would now be accepted.
        assert c.cmd("RCPT TO:<alice@example.org>").code == 503
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        c.send(bdat(len(payload), last=True) + payload)
        r = c.reply()
        assert r.code == 503 and "RCPT" in r.text, r
        assert c.cmd("NOOP").code == 250
    assert d.queue() == [] and not d.maildir_files("alice")


def test_bdat_before_ehlo_is_503_and_consumed(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        c.send(bdat(6) + b"QUIT\r\n")
        r = c.reply()
        assert r.code == 503, r
        assert c.cmd("NOOP").code == 250  # the QUIT inside the chunk did not run


def test_data_after_bdat_is_503_then_bdat_goes_on(daemon):
    d = daemon(*LOCAL)
    part1 = b"Subject: mixed\r\nMessage-ID: <mix@client.test>\r\n\r\n"
    part2 = b"body\r\n"
    with d.smtp() as c:
        envelope(c)
        c.send(bdat(len(part1)) + part1)
        assert c.reply().code == 250
        r = c.cmd("DATA")
        assert r.code == 503 and "BDAT" in r.text, r
        r = c.cmd("MAIL FROM:<b@client.test>")
        assert r.code == 503, r
        c.send(bdat(len(part2), last=True) + part2)
        r = c.reply()
        assert r.code == 250, r
    (got,) = delivered(d)
    assert got.endswith((part1 + part2).replace(b"\r\n", b"\n"))


def test_rset_abandons_a_chunked_message(daemon):
    d = daemon(*LOCAL)
    part = b"Subject: abandoned\r\n\r\nbody\r\n"
    with d.smtp() as c:
        envelope(c)
        c.send(bdat(len(part)) + part)
        assert c.reply().code == 250
        assert c.cmd("RSET").code == 250
        r = c.cmd("BDAT 0 LAST")
        assert r.code == 503, r
    assert d.queue() == [] and not d.maildir_files("alice")


def test_oversize_chunk_552_consumed_then_503(daemon):
    d = daemon(*LOCAL, "max_message_size = 2K")
    big = b"x" * 998 + b"\r\n"
    big = big * 3  # 3000 octets > 2048
    with d.smtp() as c:
        envelope(c)
        c.send(bdat(len(big)) + big + bdat(6, last=True) + b"tail\r\n")
        r = c.reply()
        assert r.code == 552 and "5.3.4" in r.text, r
        r = c.reply()
        assert r.code == 503, r  # the transaction is gone
        assert c.cmd("NOOP").code == 250
    ev = d.wait_event(2013)
    assert ev and ev[0]["size"] == "3000", ev
    assert d.queue() == []


def test_oversize_over_several_chunks(daemon):
    d = daemon(*LOCAL, "max_message_size = 2K")
    chunk = (b"y" * 98 + b"\r\n") * 8  # 800 octets
    with d.smtp() as c:
        envelope(c)
        c.send(bdat(800) + chunk + bdat(800) + chunk + bdat(800, last=True) + chunk)
        codes = [c.reply().code for _ in range(3)]
        assert codes == [250, 250, 552], codes
    assert d.queue() == []


def test_huge_announced_size_is_refused_without_allocation(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        envelope(c)
        c.send(b"BDAT 18446744073709551615 LAST\r\nabc")
        # The server waits for the announced octets; the client gives up.
    with d.smtp() as c:
        envelope(c)
        r = c.cmd("BDAT 99999999999999999999999")
        assert r.code == 501, r
        assert c.cmd("NOOP").code == 250


def test_syntax_errors(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        envelope(c)
        for bad in ("BDAT", "BDAT x", "BDAT -1", "BDAT 10 FIRST", "BDAT 10LAST"):
            r = c.cmd(bad)
            assert r.code == 501, (bad, r)
        r = c.cmd("BDAT 0 last")  # LAST is case-insensitive
        assert r.code == 250 and "queued" in r.text, r


def test_bare_lf_in_chunk_refused(daemon):
    """A bare LF would become an end-of-data mark if the message later
    leaves by DATA: refused like in DATA, nothing queued."""
    d = daemon(*LOCAL)
    for msg in (b"Subject: x\r\n\r\nline\n.\nmore\r\n", b"Subject: x\r\n\r\nbare cr\rhere\r\n",
                b"Subject: x\r\n\r\nends in cr\r"):
        with d.smtp() as c:
            envelope(c)
            c.send(bdat(len(msg), last=True) + msg)
            r = c.reply()
            assert r.code == 550 and "bare CR or LF" in r.text, (msg, r)
            assert c.cmd("NOOP").code == 250
    assert d.queue() == [] and not d.maildir_files("alice")
    assert len(d.wait_event(4193)) >= 3


def test_crlf_split_across_chunks_is_fine(daemon):
    d = daemon(*LOCAL)
    part1 = b"Subject: split\r\nMessage-ID: <split@client.test>\r\n\r\nline one\r"
    part2 = b"\nline two\r\n"
    with d.smtp() as c:
        envelope(c)
        c.send(bdat(len(part1)) + part1 + bdat(len(part2), last=True) + part2)
        assert c.reply().code == 250
        r = c.reply()
        assert r.code == 250, r
    (got,) = delivered(d)
    assert got.endswith(b"line one\nline two\n")


def test_nul_and_long_line_refused(daemon):
    d = daemon(*LOCAL)
    for msg, why in ((b"Subject: x\r\n\r\na\x00b\r\n", "NUL"),
                     (b"Subject: x\r\n\r\n" + b"z" * 1200 + b"\r\n", "too long")):
        with d.smtp() as c:
            envelope(c)
            c.send(bdat(len(msg), last=True) + msg)
            r = c.reply()
            assert r.code == 550 and why in r.text, r
    assert d.queue() == []


def test_two_messages_pipelined_with_bdat(daemon):
    """Everything in one write: the second message waits for the first's
    group commit, both get their 250 in order."""
    d = daemon(*LOCAL)
    m1 = b"Subject: one\r\nMessage-ID: <p1@client.test>\r\n\r\nfirst\r\n"
    m2 = b"Subject: two\r\nMessage-ID: <p2@client.test>\r\n\r\nsecond\r\n"
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<alice@example.org>\r\n" +
               bdat(len(m1), last=True) + m1 +
               b"MAIL FROM:<a@client.test>\r\nRCPT TO:<bob@example.org>\r\n" +
               bdat(len(m2), last=True) + m2 + b"QUIT\r\n")
        replies = c.replies_until_close()
    assert [r.code for r in replies] == [250, 250, 250, 250, 250, 250, 221], replies
    assert queued_id(replies[2]) != queued_id(replies[5])
    (a,) = delivered(d, "alice")
    (b,) = delivered(d, "bob")
    assert a.endswith(m1.replace(b"\r\n", b"\n")) and b.endswith(m2.replace(b"\r\n", b"\n"))


def test_large_message_in_many_chunks(daemon):
    d = daemon(*LOCAL)
    lines = b"".join(b"line %06d %s\r\n" % (i, b"abcdefghij" * 7) for i in range(12000))
    msg = b"Subject: large\r\nMessage-ID: <large@client.test>\r\n\r\n" + lines
    chunks = [msg[i:i + 65536] for i in range(0, len(msg), 65536)]
    wire = b"".join(bdat(len(ch), last=(i == len(chunks) - 1)) + ch for i, ch in enumerate(chunks))
    with d.smtp(timeout=30) as c:
        envelope(c)
        c.send(wire)
        replies = [c.reply() for _ in chunks]
    assert all(r.code == 250 for r in replies), replies[-3:]
    assert "queued as" in replies[-1].text
    (got,) = delivered(d)
    assert got.endswith(msg.replace(b"\r\n", b"\n"))


def test_client_drops_mid_chunk_nothing_queued(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        envelope(c)
        c.send(bdat(1000, last=True) + b"Subject: cut\r\n\r\nonly part")
    # The daemon is still fine and nothing was queued.
    with d.smtp() as c:
        assert c.cmd("NOOP").code == 250
    assert d.queue() == [] and not d.maildir_files("alice")
