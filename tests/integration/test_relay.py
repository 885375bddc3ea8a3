# Relay control from outside mynetworks: only our own users are accepted;
# the classic relay tricks are all refused; inside mynetworks relaying works.
import re

import pytest

from daemon import files_under
from smtpraw import message, queued_id
from wait import wait_until

OUTSIDE = ("hostname = mx.test.example", "mynetworks = 192.0.2.0/24",
           "local_domains = example.org", "local_recipients = alice")

TRICKS = [
    "user%other.example@example.org",
    "other.example!user@example.org",
    '"user@other.example"@example.org',
    "@example.org:user@other.example",
    "user@other.example.",
    "user@[192.0.2.1]",
    "user@[127.0.0.1]",
    "alice@example.org.",
    "alice@other.example@example.org",
    "../alice@example.org",
    "alice/../../x@example.org",
    "ALICE%other.example@EXAMPLE.ORG",
]


@pytest.fixture
def outside(daemon):
    return daemon(*OUTSIDE)


def session(d):
    c = d.smtp()
    assert c.cmd("EHLO client.test").code == 250
    assert c.cmd("MAIL FROM:<someone@client.test>").code == 250
    return c


def test_local_user_accepted_and_delivered(outside):
    d = outside
    r = d.send("someone@client.test", ["alice@example.org"], message("to alice"))
    assert r.code == 250, r
    queued_id(r)


def test_case_of_local_user_and_domain_is_ignored(outside):
    with session(outside) as c:
        assert c.cmd("RCPT TO:<Alice@EXAMPLE.org>").code == 250


def test_unknown_local_user_550_511(outside):
    d = outside
    with session(d) as c:
        r = c.cmd("RCPT TO:<bob@example.org>")
        assert r.code == 550 and r.lines[0].startswith("5.1.1"), r
    assert d.wait_event(4194)
    assert not (d.dir / "mail" / "bob").exists()


def test_remote_recipient_554_571(outside):
    d = outside
    with session(d) as c:
        r = c.cmd("RCPT TO:<remote@other.example>")
        assert r.code == 554 and r.lines[0].startswith("5.7.1"), r
        assert "relay" in r.text.lower(), r
        # Nothing to send: DATA has no valid recipient.
        assert c.cmd("DATA").code in (503, 554)
    assert d.wait_event(4192)
    assert d.queue() == []


@pytest.mark.parametrize("addr", TRICKS)
def test_relay_trick_refused(outside, addr):
    d = outside
    with session(d) as c:
        r = c.cmd("RCPT TO:<%s>" % addr)
        assert 500 <= r.code < 600, (addr, r)
        assert c.cmd("NOOP").code == 250
        assert c.cmd("DATA").code in (503, 554)
    assert d.queue() == []
    # A refused local part never becomes a directory.
    mail = d.dir / "mail"
    made = sorted(p.name for p in mail.iterdir()) if mail.exists() else []
    assert set(made) <= {"alice", "postmaster"}, made
    assert not (d.dir.parent / "x").exists()


def test_tricks_refused_even_after_a_good_recipient(outside):
    d = outside
    with session(d) as c:
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        for addr in TRICKS:
            r = c.cmd("RCPT TO:<%s>" % addr)
            assert 500 <= r.code < 600, (addr, r)
        assert c.cmd("DATA").code == 354
        c.send(message("only alice") + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
    qid = queued_id(r)
    # Only alice got it; no remote recipient is queued anywhere.
    for e in d.queue():
        assert "other.example" not in str(e) and "192.0.2.1" not in str(e), e
    assert qid


def test_inside_mynetworks_relays(daemon):
    d = daemon("local_domains = example.org", "local_recipients = alice")
    r = d.send("someone@client.test", ["user@other.example"],
               message("relayed"))
    assert r.code == 250, r
    qid = queued_id(r)
    mine = [e for e in d.queue() if e.get("id") == qid]
    assert len(mine) == 1 and "user@other.example" in str(mine[0]), d.queue()
    assert files_under(d.dir / "queue")


def test_message_id_added_only_for_mynetworks(daemon):
    """Issue 2: a Message-ID is assigned when missing for mail from
    mynetworks; mail from outside is delivered as sent."""
    inside = daemon("local_domains = example.org", "local_recipients = alice")
    outside_d = daemon(*OUTSIDE)
    for d in (inside, outside_d):
        r = d.send("someone@client.test", ["alice@example.org"],
                   message("no id", body="no id here", msgid=False))
        assert r.code == 250, r
    ins = wait_until(lambda: inside.maildir_files("alice"), 10)
    outs = wait_until(lambda: outside_d.maildir_files("alice"), 10)
    assert len(ins) == 1 and len(outs) == 1
    assert len(re.findall(rb"(?im)^message-id:", ins[0].read_bytes())) == 1
    assert re.findall(rb"(?im)^message-id:", outs[0].read_bytes()) == []
