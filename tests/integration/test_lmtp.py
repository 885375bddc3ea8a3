"""LMTP (RFC 2033) in the SMTP client engine, through build/smtpc --lmtp:
against a real Dovecot LMTP server with a private configuration (TCP on
127.0.0.1 and a unix socket), and against the scripted recorder in LMTP mode
for per-recipient 4xx/5xx after the data, drops between those replies and
LHLO refusal. Messages are queued with the real `dialmail sendmail`.
Invariant: every Dovecot a test starts is stopped by its PID.
"""
import json
import subprocess

import pytest

from dovecot import Dovecot


def run_lmtp(smtpc_bin, queue, target, *args, timeout=30):
    """smtpc --lmtp to target ("127.0.0.1:N" or "unix:PATH"): (process,
    per-recipient results by address, session line)."""
    r = subprocess.run([smtpc_bin, "--lmtp", "--dir", str(queue.dir), *args, target],
                       capture_output=True, timeout=timeout)
    assert b"runtime error" not in r.stderr and b"Sanitizer" not in r.stderr, r.stderr
    lines = [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]
    assert lines and "session" in lines[-1], (r.stdout, r.stderr)
    return r, lines[:-1], lines[-1]


def by_rcpt(results):
    return {r["rcpt"]: r for r in results}


def lf(wire):
    """What a Maildir file holds for queued wire-form content."""
    return wire.replace(b"\r\n", b"\n")


# ------------------------------------------------------------- Dovecot

@pytest.fixture
def dovecot(tmp_path):
    d = Dovecot(tmp_path)
    try:
        d.start()
        yield d
    finally:
        d.stop()


def assert_delivered(dovecot, user, contents):
    """The user's Maildir holds exactly these messages, byte for byte after
    the headers Dovecot prepends (Return-Path, Received)."""
    got = dovecot.inbox(user)
    assert len(got) == len(contents), (user, got)
    for want in contents:
        assert any(g.endswith(lf(want)) for g in got), (user, want, got)
    for g in got:
        assert g.startswith(b"Return-Path: <"), g[:200]


@pytest.mark.parametrize("target", ["tcp", "unix"])
def test_dovecot_per_recipient_results(smtpc_bin, queue, dovecot, target):
    """alice and bob get the message byte-exact in their Maildir; the
    unknown user gets Dovecot's 5xx, for that recipient only."""
    qid = queue.add(["alice@branch.example", "nobody@branch.example", "bob@branch.example"],
                    body="line one\n.dot line\n..two dots\n\xe4 8-bit\n", subject="to the site")
    where = "127.0.0.1:%d" % dovecot.port if target == "tcp" else "unix:%s" % dovecot.socket
    r, res, sess = run_lmtp(smtpc_bin, queue, where)
    assert sess["cause"] == "ok", (sess, dovecot.diagnostics())
    res = by_rcpt(res)
    assert res["alice@branch.example"]["status"] == "ok"
    assert res["bob@branch.example"]["status"] == "ok"
    assert "<bob@branch.example>" in res["bob@branch.example"]["reply"]
    bad = res["nobody@branch.example"]
    assert bad["status"] == "permfail" and bad["reply"].startswith("550 5.1.1"), bad
    assert bad["message_status"] == "tempfail"  # mixed: not all permanent
    assert r.returncode == 0 and sess["messages_ok"] == 0
    content = queue.content(qid)
    assert_delivered(dovecot, "alice", [content])
    assert_delivered(dovecot, "bob", [content])
    assert not (dovecot.mail / "nobody").exists()


@pytest.mark.parametrize("chunking", [True, False])
def test_dovecot_several_messages_one_connection(smtpc_bin, queue, dovecot, chunking):
    """Four messages over one unix-socket connection, with BDAT (Dovecot
    offers CHUNKING) and with DATA: each reply goes to the right recipient."""
    ids = []
    for i in range(4):
        rcpts = ["alice@branch.example", "bob@branch.example"] if i % 2 == 0 else \
            ["ghost%d@branch.example" % i, "bob@branch.example"]
        ids.append(queue.add(rcpts, body="message %d\n.\n.end\n" % i, subject="m%d" % i))
    args = [] if chunking else ["--no-chunking"]
    r, res, sess = run_lmtp(smtpc_bin, queue, "unix:%s" % dovecot.socket, *args)
    assert sess["cause"] == "ok", (sess, dovecot.diagnostics())
    assert len(res) == 8
    for x in res:
        want = "permfail" if x["rcpt"].startswith("ghost") else "ok"
        assert x["status"] == want, x
    assert sess["messages_ok"] == 2
    contents = [queue.content(q) for q in ids]
    assert_delivered(dovecot, "alice", [contents[0], contents[2]])
    assert_delivered(dovecot, "bob", contents)


# ----------------------------------------------------- scripted LMTP peer

@pytest.fixture
def recorders(recorders):
    """The shared recorder factory (conftest), in LMTP mode."""
    return lambda **kw: recorders(lmtp=True, **kw)


@pytest.mark.parametrize("chunking", [True, False])
def test_per_recipient_4xx_5xx_after_data(smtpc_bin, queue, recorders, chunking):
    """After the data each accepted recipient gets its own reply, in RCPT
    order, skipping those RCPT refused: a 4xx defers only that recipient,
    a 5xx fails only that one."""
    rec = recorders(extensions=["PIPELINING", "CHUNKING", "8BITMIME"],
                    rcpt_replies={"x@site.example": "550 5.1.1 no such user"},
                    lmtp_replies={"bob@site.example": "452 4.2.2 bob's mailbox is full",
                                  "carol@site.example": "552 5.2.2 carol is over quota"})
    rcpts = ["alice@site.example", "x@site.example", "bob@site.example", "carol@site.example",
             "dave@site.example"]
    qid = queue.add(rcpts)
    args = [] if chunking else ["--no-chunking"]
    r, res, sess = run_lmtp(smtpc_bin, queue, "127.0.0.1:%d" % rec.port, *args)
    assert sess["cause"] == "ok", sess
    res = by_rcpt(res)
    assert res["alice@site.example"]["status"] == "ok"
    assert res["alice@site.example"]["reply"] == "250 2.0.0 <alice@site.example> delivered as 1"
    assert res["x@site.example"]["status"] == "permfail"
    assert res["x@site.example"]["reply"] == "550 5.1.1 no such user"
    assert res["bob@site.example"]["status"] == "tempfail"
    assert res["bob@site.example"]["reply"] == "452 4.2.2 bob's mailbox is full"
    assert res["carol@site.example"]["status"] == "permfail"
    assert res["carol@site.example"]["reply"] == "552 5.2.2 carol is over quota"
    assert res["dave@site.example"]["status"] == "ok"
    assert res["dave@site.example"]["message_status"] == "tempfail"
    assert rec.wait_closed()
    s = rec.sessions[0]
    wire = s.client_bytes()
    assert wire.startswith(b"LHLO client.test\r\n")
    assert b"EHLO" not in wire and b"HELO" not in wire
    assert (b"BDAT " in wire) == chunking
    assert [m.data for m in s.messages] == [queue.content(qid)]


def test_pipelining_implied_and_replies_matched_across_messages(smtpc_bin, queue, recorders):
    """LMTP implies PIPELINING even when LHLO does not list it: several
    messages go out with few waits, and each message's replies land on its
    own recipients."""
    delay = 0.25
    rec = recorders(extensions=["CHUNKING"], delay=delay,
                    lmtp_replies={"b1@site.example": "451 4.3.0 try b1 later"})
    for i in range(4):
        queue.add(["a%d@site.example" % i, "b%d@site.example" % i])
    r, res, sess = run_lmtp(smtpc_bin, queue, "127.0.0.1:%d" % rec.port)
    assert sess["cause"] == "ok", sess
    res = by_rcpt(res)
    assert len(res) == 8
    for i in range(4):
        a, b = res["a%d@site.example" % i], res["b%d@site.example" % i]
        assert a["status"] == "ok" and "<a%d@site.example>" % i in a["reply"], a
        if i == 1:
            assert b["status"] == "tempfail" and b["reply"] == "451 4.3.0 try b1 later"
        else:
            assert b["status"] == "ok" and "<b%d@site.example>" % i in b["reply"], b
    assert sess["messages_ok"] == 3
    assert rec.wait_closed()
    assert rec.sessions[0].bursts(delay / 2) <= 3  # banner, LHLO, the rest
    assert sess["waits"] <= 3


@pytest.mark.parametrize("chunking", [True, False])
def test_all_refused_then_next_message(smtpc_bin, queue, recorders, chunking):
    """A message whose recipients are all refused at RCPT takes the single
    refusal to its data (no per-recipient replies to wait for), and the next
    message on the connection still gets its own replies."""
    rec = recorders(rcpt_replies={"x@site.example": "550 5.1.1 no such user"})
    first = queue.add(["x@site.example"], subject="a")
    second = queue.add(["a@site.example", "b@site.example"], subject="b")
    args = [] if chunking else ["--no-chunking"]
    r, res, sess = run_lmtp(smtpc_bin, queue, "127.0.0.1:%d" % rec.port, *args)
    assert sess["cause"] == "ok", sess
    got = {(x["id"], x["rcpt"]): x for x in res}
    assert got[(first, "x@site.example")]["status"] == "permfail"
    assert got[(first, "x@site.example")]["message_status"] == "permfail"
    for a in ("a@site.example", "b@site.example"):
        assert got[(second, a)]["status"] == "ok"
        assert got[(second, a)]["reply"].startswith("250 2.0.0 <%s>" % a)
    assert rec.wait_closed()
    assert [m.rcpts for m in rec.sessions[0].messages] == [["a@site.example", "b@site.example"]]


def test_drop_between_recipient_replies(smtpc_bin, queue, recorders):
    """The connection drops after the first recipient's reply to the data:
    that recipient stays delivered, the others are deferred with a note that
    the data went out."""
    rec = recorders(lmtp_drop_after=(1, 1))
    queue.add(["a@site.example", "b@site.example", "c@site.example"])
    r, res, sess = run_lmtp(smtpc_bin, queue, "127.0.0.1:%d" % rec.port)
    assert sess["cause"] == "connection-lost" and r.returncode == 1
    res = by_rcpt(res)
    assert res["a@site.example"]["status"] == "ok"
    for x in ("b@site.example", "c@site.example"):
        assert res[x]["status"] == "tempfail"
        assert "may have been delivered" in res[x]["reply"], res[x]


def test_lhlo_refused_no_helo_fallback(smtpc_bin, queue, recorders):
    rec = recorders(ehlo_reply="500 5.5.1 go away")
    queue.add(["a@site.example"])
    r, res, sess = run_lmtp(smtpc_bin, queue, "127.0.0.1:%d" % rec.port)
    assert sess["cause"] == "helo-refused"
    assert sess["text"] == "LHLO refused: 500 5.5.1 go away"
    assert res[0]["status"] == "tempfail" and res[0]["attempted"] is False
    assert rec.wait_closed()
    assert rec.sessions[0].client_bytes() == b"LHLO client.test\r\nQUIT\r\n"


def test_unix_socket_missing(smtpc_bin, queue, tmp_path):
    queue.add(["a@site.example"])
    r, res, sess = run_lmtp(smtpc_bin, queue, "unix:%s" % (tmp_path / "no-such.sock"))
    assert sess["cause"] == "connect-failed" and "No such file" in sess["text"], sess
    assert res[0]["status"] == "tempfail" and res[0]["attempted"] is False
    long_path = "unix:/" + "x" * 200
    r = subprocess.run([smtpc_bin, "--lmtp", "--dir", str(queue.dir), long_path],
                       capture_output=True, timeout=30)
    assert r.returncode != 0 and b"nor unix:PATH" in r.stderr
