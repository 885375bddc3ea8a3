"""The DSN extension (RFC 3461) end to end: the server takes RET, ENVID,
NOTIFY and ORCPT (and refuses bad ones with 501), the queue keeps them, the
bounce logic honours NOTIFY and RET, the reports carry Original-Envelope-Id
and Original-Recipient, and the client passes the parameters on to a
server that offers DSN. Also the configurable client banner timeout.
What a user would check: replies, the DSNs in the sender's Maildir (parsed
with Python's email package), the bytes on the wire, events and tracking.
"""
import email
import email.policy
import time

import pytest

from smtpraw import SmtpRaw
from wait import wait_until

CRLF = b"\r\n"


def smarthost_daemon(daemon, rec_port, *extra):
    return daemon("local_recipients = alice, bob", "queue_run_interval = 1h", *extra,
                  "[routes]", "* = smarthost 127.0.0.1:%d tls=none" % rec_port)


def send_dsn(port, mail, rcpts, data):
    """One message; mail: "MAIL FROM:..." line with parameters, rcpts: full
    "RCPT TO:..." lines. Returns the reply to the end of DATA."""
    with SmtpRaw(port) as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd(mail)
        assert r.code == 250, r
        for line in rcpts:
            r = c.cmd(line)
            assert r.code == 250, (line, r)
        assert c.cmd("DATA").code == 354
        c.send(data + b".\r\n")
        r = c.reply()
        c.send(b"QUIT\r\n")
        return r


def messages(dm, user):
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.compat32)
            for p in dm.maildir_files(user)]


def report(msg):
    """(per-message fields, [per-recipient fields], returned part) of a DSN."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    parts = msg.get_payload()
    status = [p for p in parts if p.get_content_type() == "message/delivery-status"][0]
    groups = [dict((k.lower(), v) for k, v in g.items()) for g in status.get_payload()]
    returned = [p for p in parts if p.get_content_type() in ("message/rfc822",
                                                             "text/rfc822-headers")]
    return groups[0], groups[1:], returned[0]


BODY = (b"Subject: dsn test\r\nMessage-ID: <dsn-1@client.test>\r\n\r\n"
        b"the body line\r\n")


# ------------------------------------------------------------ server side

def test_ehlo_offers_dsn_last_and_good_params_are_taken(daemon):
    d = daemon("local_recipients = alice")
    with d.smtp() as c:
        r = c.cmd("EHLO client.test")
        assert r.lines[-1] == "DSN", r
        assert c.cmd("MAIL FROM:<s@client.test> RET=HDRS ENVID=Q+2B1").code == 250
        assert c.cmd("RCPT TO:<alice@localhost> NOTIFY=SUCCESS,DELAY "
                     "ORCPT=rfc822;Alice+40localhost").code == 250
        assert c.cmd("RCPT TO:<postmaster> NOTIFY=never").code == 250


@pytest.mark.parametrize("mail", [
    "MAIL FROM:<s@x.test> RET=SOME",
    "MAIL FROM:<s@x.test> RET",
    "MAIL FROM:<s@x.test> RET=FULL RET=HDRS",
    "MAIL FROM:<s@x.test> ENVID=a=b",
    "MAIL FROM:<s@x.test> ENVID=a+2b",
    "MAIL FROM:<s@x.test> ENVID=" + "x" * 101,
    "MAIL FROM:<s@x.test> ENVID=a ENVID=b",
])
def test_bad_mail_params_501(daemon, mail):
    d = daemon("local_recipients = alice")
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd(mail)
        assert r.code == 501 and "5.5.4" in r.text, r
        # the refused MAIL left nothing behind: a plain MAIL works
        assert c.cmd("MAIL FROM:<s@x.test>").code == 250


@pytest.mark.parametrize("param", [
    "NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "NOTIFY=", "NOTIFY=FAILURE NOTIFY=DELAY",
    "ORCPT=rfc822", "ORCPT=;a@b", "ORCPT=rfc822;a=b", "ORCPT=rfc822;a ORCPT=rfc822;b",
])
def test_bad_rcpt_params_501(daemon, param):
    d = daemon("local_recipients = alice")
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<s@x.test>").code == 250
        r = c.cmd("RCPT TO:<alice@localhost> " + param)
        assert r.code == 501 and "5.5.4" in r.text, r
        assert c.cmd("RCPT TO:<alice@localhost> FOO=1").code == 555


# ------------------------------------------------------------ bounces

def test_notify_never_suppresses_bounce_notify_failure_bounces_full(daemon, recorders):
    """Two recipients refused with 550: NOTIFY=NEVER gets no report (event
    and tracking say so), NOTIFY=SUCCESS,FAILURE gets one, with the whole
    message (RET=FULL), Original-Envelope-Id and Original-Recipient."""
    rec = recorders(rcpt_replies={"never@remote.example": "550 5.1.1 no such user",
                                  "fail@remote.example": "550 5.1.1 no such user"})
    dm = smarthost_daemon(daemon, rec.port)
    r = send_dsn(dm.port, "MAIL FROM:<alice@localhost> RET=FULL ENVID=env+2B42",
                 ["RCPT TO:<never@remote.example> NOTIFY=NEVER",
                  "RCPT TO:<fail@remote.example> NOTIFY=SUCCESS,FAILURE "
                  "ORCPT=rfc822;Orig+2Bfail@remote.example"], BODY)
    assert r.code == 250
    assert wait_until(lambda: dm.maildir_files("alice"), 10), dm.log_text()
    ev = dm.wait_event(3003, pred=lambda e: e.get("rcpt") == "never@remote.example")
    assert ev and "DSN suppressed by NOTIFY" in ev[0]["text"], ev
    assert any("\t1021\t" in l and "never@remote.example" in l and "suppressed by NOTIFY" in l
               for l in dm.tracking()), dm.tracking()
    assert dm.wait_event(3003, pred=lambda e: e.get("rcpt") == "fail@remote.example")
    time.sleep(0.5)  # a second (wrong) report would have been queued by now
    msgs = messages(dm, "alice")
    assert len(msgs) == 1, [m["Subject"] for m in msgs]
    top, rcpts, returned = report(msgs[0])
    assert top["original-envelope-id"] == "env+42"
    assert len(rcpts) == 1
    assert rcpts[0]["final-recipient"].lower() == "rfc822; fail@remote.example"
    assert rcpts[0]["original-recipient"] == "rfc822; Orig+fail@remote.example"
    assert rcpts[0]["action"] == "failed"
    assert returned.get_content_type() == "message/rfc822"
    assert b"the body line" in returned.as_bytes()
    assert wait_until(lambda: dm.queue_ids() == [], 5), dm.queue()


def test_ret_hdrs_returns_headers_only(daemon, recorders):
    rec = recorders(rcpt_replies={"fail@remote.example": "550 5.1.1 no such user"})
    dm = smarthost_daemon(daemon, rec.port)
    r = send_dsn(dm.port, "MAIL FROM:<alice@localhost> RET=HDRS",
                 ["RCPT TO:<fail@remote.example>"], BODY)
    assert r.code == 250
    assert wait_until(lambda: dm.maildir_files("alice"), 10), dm.log_text()
    top, rcpts, returned = report(messages(dm, "alice")[0])
    assert "original-envelope-id" not in top
    assert "original-recipient" not in rcpts[0]
    assert returned.get_content_type() == "text/rfc822-headers"
    text = returned.get_payload()
    assert "Message-ID: <dsn-1@client.test>" in text and "the body line" not in text


def test_notify_success_relayed_to_non_dsn_server(daemon, recorders):
    """The smarthost does not offer DSN: the parameters are not sent, and
    the sender gets an "Action: relayed" report (RFC 3461 6.2.2)."""
    rec = recorders(extensions=["PIPELINING", "8BITMIME"])
    dm = smarthost_daemon(daemon, rec.port)
    r = send_dsn(dm.port, "MAIL FROM:<alice@localhost> ENVID=e1",
                 ["RCPT TO:<ok@remote.example> NOTIFY=SUCCESS ORCPT=rfc822;ok+40remote.example",
                  "RCPT TO:<quiet@remote.example>"], BODY)
    assert r.code == 250
    assert rec.wait_closed(1, timeout=10)
    wire = rec.sessions[0].client_bytes()
    assert b"NOTIFY" not in wire and b"ENVID" not in wire and b"ORCPT" not in wire
    assert wait_until(lambda: dm.maildir_files("alice"), 10), dm.log_text()
    time.sleep(0.3)
    msgs = messages(dm, "alice")
    assert len(msgs) == 1
    top, rcpts, returned = report(msgs[0])
    assert top["original-envelope-id"] == "e1"
    assert [g["final-recipient"].lower() for g in rcpts] == ["rfc822; ok@remote.example"]
    assert rcpts[0]["action"] == "relayed"
    assert rcpts[0]["status"].startswith("2.")
    assert rcpts[0]["original-recipient"] == "rfc822; ok@remote.example"
    assert returned.get_content_type() == "text/rfc822-headers"


def test_dsn_server_receives_params_and_no_relayed_report(daemon, recorders):
    """The smarthost offers DSN: RET/ENVID go with MAIL and NOTIFY/ORCPT
    with RCPT, byte for byte as received; the next hop reports success, so
    we send no report ourselves."""
    rec = recorders(extensions=["PIPELINING", "8BITMIME", "DSN"])
    dm = smarthost_daemon(daemon, rec.port)
    r = send_dsn(dm.port, "MAIL FROM:<alice@localhost> RET=HDRS ENVID=E+2B9",
                 ["RCPT TO:<ok@remote.example> NOTIFY=SUCCESS,FAILURE "
                  "ORCPT=rfc822;ok+40remote.example",
                  "RCPT TO:<plain@remote.example>"], BODY)
    assert r.code == 250
    assert rec.wait_closed(1, timeout=10)
    wire = rec.sessions[0].client_bytes()
    assert b"MAIL FROM:<alice@localhost> RET=HDRS ENVID=E+2B9\r\n" in wire, wire
    assert (b"RCPT TO:<ok@remote.example> NOTIFY=SUCCESS,FAILURE "
            b"ORCPT=rfc822;ok+40remote.example\r\n") in wire, wire
    assert b"RCPT TO:<plain@remote.example>\r\n" in wire, wire
    assert wait_until(lambda: dm.queue_ids() == [], 10), dm.queue()
    time.sleep(0.3)
    assert dm.maildir_files("alice") == []


def test_notify_success_local_delivery_gets_delivered_report(daemon):
    d = daemon("local_recipients = alice, bob")
    r = send_dsn(d.port, "MAIL FROM:<alice@localhost> ENVID=loc1",
                 ["RCPT TO:<bob@localhost> NOTIFY=SUCCESS"], BODY)
    assert r.code == 250
    assert wait_until(lambda: d.maildir_files("bob"), 5)
    assert wait_until(lambda: d.maildir_files("alice"), 5), d.log_text()
    top, rcpts, _ = report(messages(d, "alice")[0])
    assert top["original-envelope-id"] == "loc1"
    assert rcpts[0]["action"] == "delivered"
    assert rcpts[0]["final-recipient"].lower() == "rfc822; bob@localhost"


def test_local_delivery_without_notify_success_gets_no_report(daemon):
    d = daemon("local_recipients = alice, bob")
    r = send_dsn(d.port, "MAIL FROM:<alice@localhost>",
                 ["RCPT TO:<bob@localhost> NOTIFY=FAILURE"], BODY)
    assert r.code == 250
    assert wait_until(lambda: d.maildir_files("bob"), 5)
    time.sleep(0.5)
    assert d.maildir_files("alice") == []


def test_local_permanent_failure_bounces_to_the_sender(daemon):
    # An alias loop is accepted at RCPT and fails at delivery: a local bounce.
    d = daemon("local_recipients = alice", "[aliases]", "loop1 = loop2", "loop2 = loop1")
    r = send_dsn(d.port, "MAIL FROM:<alice@localhost> ENVID=lp1",
                 ["RCPT TO:<loop1@localhost>"], BODY)
    assert r.code == 250
    assert wait_until(lambda: d.maildir_files("alice"), 5), d.log_text()
    top, rcpts, _ = report(messages(d, "alice")[0])
    assert top["original-envelope-id"] == "lp1"
    assert rcpts[0]["action"] == "failed"
    assert rcpts[0]["final-recipient"].lower() == "rfc822; loop1@localhost"
    assert rcpts[0]["status"].startswith("5.")


def test_local_permanent_failure_with_notify_never_sends_no_bounce(daemon):
    d = daemon("local_recipients = alice", "[aliases]", "loop1 = loop2", "loop2 = loop1")
    r = send_dsn(d.port, "MAIL FROM:<alice@localhost>",
                 ["RCPT TO:<loop1@localhost> NOTIFY=NEVER"], BODY)
    assert r.code == 250
    assert wait_until(lambda: [e for e in d.events() if e["id"] == 2021], 5)
    time.sleep(0.5)
    assert d.maildir_files("alice") == []


# ------------------------------------------------------------ timeouts

def test_banner_timeout_setting(daemon, recorders):
    """smtp_banner_timeout = 2s against a server that never greets: the
    connection is given up after about 2 s (event 3010, cause
    banner-timeout) and the recipient is deferred."""
    rec = recorders(hold_banner=True)
    dm = smarthost_daemon(daemon, rec.port, "smtp_banner_timeout = 2s")
    t0 = time.monotonic()
    r = send_dsn(dm.port, "MAIL FROM:<alice@localhost>", ["RCPT TO:<far@remote.example>"], BODY)
    assert r.code == 250
    ev = dm.wait_event(3010, timeout=10)
    elapsed = time.monotonic() - t0
    assert ev and ev[0]["cause"] == "banner-timeout", ev
    assert 1.5 <= elapsed <= 5.0, elapsed
    assert dm.wait_event(3002, pred=lambda e: e.get("rcpt") == "far@remote.example")
    st = [rc for e in dm.queue() for rc in e["recipients"]]
    assert st and st[0]["state"] == "pending", st
