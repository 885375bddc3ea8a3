# SMTP smuggling and garbage, with raw sockets: a bare CR or LF in data or
# commands must never let bytes become a message; garbage never kills the
# daemon. After each attack a good message is sent and waited for, so "no
# other message arrived" is checked after the daemon has caught up.
import random
import threading

import pytest

from smtpraw import SmtpRaw, message, queued_id
from wait import wait_until

CONF = ("local_domains = example.org", "local_recipients = alice")

SMUGGLED = (b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<alice@example.org>\r\n"
            b"DATA\r\nFrom: evil@x.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")

SEQUENCES = [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\n.\r", b"\r\n.\r"]


def outer(seq):
    return (b"From: sender@client.test\r\nTo: alice@example.org\r\nSubject: outer\r\n\r\n"
            b"hello" + seq + SMUGGLED)


def after_refusal_session_goes_on_or_closes(c):
    """After a refusal the session either continues (NOOP 250, QUIT 221)
    or has been closed cleanly; nothing else may be answered."""
    try:
        c.send(b"NOOP\r\nQUIT\r\n")
    except OSError:
        return
    codes = [r.code for r in c.replies_until_close(timeout=10)]
    assert codes in ([], [250, 221]), codes


def check_nothing_got_through(d):
    """Sends one good message to alice, waits for its delivery, then checks
    it is the only message that exists anywhere."""
    r = d.send("good@client.test", ["alice@example.org"], message("good after", body="good"))
    assert r.code == 250, r
    qid = queued_id(r)
    files = wait_until(lambda: d.maildir_files("alice"), 10)
    assert wait_until(lambda: qid not in d.queue_ids(), 10)
    files = d.maildir_files("alice") + d.maildir_files("alice", "cur")
    assert len(files) == 1, [f.read_bytes()[:400] for f in files]
    data = files[0].read_bytes()
    assert b"smuggled" not in data and b"hello" not in data and qid.encode() in data
    assert d.queue() == []


@pytest.mark.parametrize("seq", SEQUENCES, ids=[s.decode().encode("unicode_escape").decode()
                                                for s in SEQUENCES])
def test_smuggled_end_of_data_refused(daemon, seq):
    d = daemon(*CONF)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<sender@client.test>").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(outer(seq))
        r = c.reply()
        assert 500 <= r.code < 600, r
        after_refusal_session_goes_on_or_closes(c)
    assert d.wait_event(4193)
    check_nothing_got_through(d)


@pytest.mark.parametrize("bare", [b"\r", b"\n"], ids=["CR", "LF"])
@pytest.mark.parametrize("where", ["header", "body", "last-line"])
def test_bare_cr_or_lf_in_data_refused(daemon, bare, where):
    d = daemon(*CONF)
    if where == "header":
        data = b"Subject: a" + bare + b"b\r\nFrom: x@client.test\r\n\r\nbody\r\n"
    elif where == "body":
        data = b"Subject: a\r\n\r\nfirst\r\nsec" + bare + b"ond\r\nthird\r\n"
    else:
        data = b"Subject: a\r\n\r\nfirst\r\nlast" + bare + b"\r\n"
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<sender@client.test>").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(data + b".\r\n")
        r = c.reply()
        assert 500 <= r.code < 600, r
        after_refusal_session_goes_on_or_closes(c)
    assert d.wait_event(4193)
    check_nothing_got_through(d)


@pytest.mark.parametrize("bare", [b"\n", b"\r"], ids=["LF", "CR"])
def test_bare_line_end_in_commands_refused(daemon, bare):
    d = daemon(*CONF)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"MAIL FROM:<sender@client.test>" + bare + b"RCPT TO:<alice@example.org>\r\n")
        r = c.reply()
        assert 500 <= r.code < 600, r
        # The rest may be read as a command of its own (then refused: there
        # is no transaction), or the server may close.
        try:
            c.send(b"NOOP\r\nQUIT\r\n")
            codes = [x.code for x in c.replies_until_close(timeout=10)]
        except OSError:
            codes = []
        assert codes == [] or (codes[-2:] == [250, 221] and
                               all(500 <= x < 600 for x in codes[:-2])), codes
    check_nothing_got_through(d)


def test_deep_pipeline_of_noops(daemon):
    d = daemon(*CONF)
    n = 2000
    with d.smtp() as c:
        c.send(b"EHLO client.test\r\n" + b"NOOP\r\n" * n + b"QUIT\r\n")
        codes = [r.code for r in c.replies_until_close(timeout=20, limit=n + 10)]
    assert codes == [250] * (n + 1) + [221]


def garbage(rng, size):
    pieces = [b"\x00", b"\r", b"\n", b"\r\n", b"\r\n.\r\n", b"DATA\r\n", b"RSET\r\n",
              b"RCPT TO:<alice@example.org>\r\n", b"EHLO x\r\n", b"NOOP\r\n", b"\xff\xfe",
              b"BDAT 100 LAST\r\n", b"STARTTLS\r\n", b"AUTH PLAIN AAAA\r\n"]
    out = bytearray()
    for _ in range(100000):
        if len(out) >= size:
            break
        k = rng.random()
        if k < 0.3:
            out += rng.choice(pieces)
        elif k < 0.35:
            out += bytes([rng.randrange(32, 127)]) * rng.randrange(600, 5000)
        else:
            out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
    return bytes(out)


def garbage_client(port, seed, errors):
    rng = random.Random(seed)
    try:
        with SmtpRaw(port, timeout=5) as c:
            for _ in range(8):
                c.send(garbage(rng, 8000))
                try:  # read whatever came back, briefly
                    c._fill(0.05)
                except OSError:
                    pass
    except OSError:
        pass  # the server may close on garbage; that is fine
    except Exception as e:  # noqa: BLE001 - report anything unexpected
        errors.append(repr(e))


def test_pipelined_garbage_leaves_the_daemon_working(daemon):
    d = daemon(*CONF)
    errors = []
    threads = [threading.Thread(target=garbage_client, args=(d.port, 1000 + i, errors))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert d.alive(), d.log_text()
    # No MAIL command was ever sent, so no message may exist.
    assert d.queue() == []
    check_nothing_got_through(d)
    assert d.alive()
