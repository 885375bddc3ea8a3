"""Outbound delivery by the daemon (src/deliver/outbound.c) to a smarthost:
the scripted recording server (smtp_recorder.py) stands in for the ISP's
relay. What a user would check: the bytes that reach the smarthost, the
queue state (`dialmail queue --json`), events, the tracking log, and the
bounces (RFC 3464 DSNs) that land in the sender's local Maildir.
"""
import email
import email.policy
import os
import re
import subprocess
import time

import pytest

from dovecot import Dovecot
from pki import make_ca, make_server_cert
from smtpraw import send_message
from wait import wait_until


def smarthost_daemon(daemon, rec_port, *extra, route_opts="tls=none", start=True):
    lines = ["local_recipients = alice", "queue_run_interval = 1h", *extra,
             "[routes]", "* = smarthost 127.0.0.1:%d %s" % (rec_port, route_opts)]
    return daemon(*lines, start=start)


def sendmail_offline(dm, sender, rcpts, body, subject="test", headers=()):
    """Queues a message with `dialmail sendmail` while the daemon is not
    running (so that a whole batch waits for the first queue run);
    returns (queue id, stored wire-form content)."""
    env = dict(os.environ, DIALMAIL_DIR=str(dm.dir))
    data = "".join("%s\n" % h for h in headers) + "Subject: %s\n\n%s" % (subject, body)
    before = set(queue_files(dm))
    r = subprocess.run([dm.bin, "sendmail", "-f", sender, "--", *rcpts], input=data.encode(),
                       env=env, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    new = sorted(set(queue_files(dm)) - before)
    assert len(new) == 1, new
    return new[0], stored_content(dm, new[0])


def queue_files(dm):
    q = dm.dir / "queue"
    return [p.name for p in q.iterdir()] if q.exists() else []


def stored_content(dm, qid):
    raw = (dm.dir / "queue" / qid).read_bytes()
    m = re.search(rb"\nsize (\d+)\n", raw)
    return raw[m.end(): m.end() + int(m.group(1))]


def rcpt_states(dm):
    """{address: recipient entry} over the whole queue."""
    out = {}
    for e in dm.queue():
        for r in e["recipients"]:
            out[r["addr"]] = r
    return out


def maildir_messages(dm, user):
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.compat32)
            for p in dm.maildir_files(user)]


def dsn_fields(msg):
    """The per-recipient field groups of a DSN's message/delivery-status part."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    status = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert len(status) == 1
    groups = status[0].get_payload()  # per-message group, then one per recipient
    return [dict((k.lower(), v) for k, v in g.items()) for g in groups]


def flush(dm):
    r = dm.cli("flush", "--dir", str(dm.dir))
    assert r.returncode == 0


# ------------------------------------------------------------ smarthost

def test_queue_reaches_smarthost_byte_exact_pipelined(daemon, recorders):
    """Ten queued messages go out on one connection with CHUNKING and
    PIPELINING in O(1) waits, byte-exact, and leave the queue."""
    delay = 0.3
    rec = recorders(extensions=["PIPELINING", "CHUNKING", "8BITMIME", "SIZE 10000000"],
                    delay=delay)
    dm = smarthost_daemon(daemon, rec.port, start=False)
    sent = [sendmail_offline(dm, "alice@localhost", ["bob%d@remote.example" % i,
                                                     "carol@remote.example"],
                             "message %d\n.leading dot\n" % i)
            for i in range(10)]
    dm.start()
    assert rec.wait_closed(1, timeout=15)
    assert wait_until(lambda: dm.queue_ids() == [], 10), dm.queue()
    assert len(rec.sessions) == 1
    s = rec.sessions[0]
    assert [m.data for m in s.messages] == [c for _, c in sent]
    assert all(m.mode == "BDAT" and m.mail_from == "alice@localhost" for m in s.messages)
    assert [m.rcpts for m in s.messages] == [["bob%d@remote.example" % i,
                                              "carol@remote.example"] for i in range(10)]
    # banner -> EHLO -> everything else: O(1) waits for 10 messages
    assert s.bursts(delay / 2) <= 3, s.bursts(delay / 2)
    assert len(dm.wait_event(3001, pred=lambda e: True)) == 20
    trk = [l.split("\t") for l in dm.tracking()]
    sent_lines = [t for t in trk if "1011" in t]
    assert len(sent_lines) == 20
    assert any("rec.test" in l or "127.0.0.1" in l for l in dm.tracking() if "\t1011\t" in l)
    ev = dm.events_with(2001)
    assert ev and "20 delivered, 0 deferred, 0 undeliverable" in ev[-1]["text"], ev


def test_per_recipient_4xx_defers_only_it_and_5xx_bounces_only_it(daemon, recorders):
    rec = recorders(rcpt_replies={"temp@remote.example": "451 4.2.0 mailbox busy, try later",
                                  "bad@remote.example": "550 5.1.1 no such user here"})
    dm = smarthost_daemon(daemon, rec.port)
    r = send_message(dm.port, "alice@localhost",
                     ["ok@remote.example", "temp@remote.example", "bad@remote.example"],
                     b"Subject: three\r\nMessage-ID: <three@client.test>\r\n\r\nhello\r\n")
    assert r.code == 250
    assert wait_until(lambda: dm.maildir_files("alice"), 10), dm.log_text()
    st = rcpt_states(dm)
    assert "ok@remote.example" not in st or st["ok@remote.example"]["state"] == "delivered"
    assert st["temp@remote.example"]["state"] == "pending"
    assert st["temp@remote.example"]["attempts"] == 1
    assert "451 4.2.0" in st["temp@remote.example"]["last_reply"]
    assert st["bad@remote.example"]["state"] == "failed"
    assert rec.sessions[0].messages[0].rcpts == ["ok@remote.example"]
    # one DSN, about the bounced recipient only
    msgs = maildir_messages(dm, "alice")
    assert len(msgs) == 1
    dsn = msgs[0]
    assert dsn["To"].strip("<>") .endswith("alice@localhost")
    assert "MAILER-DAEMON" in dsn["From"]
    groups = dsn_fields(dsn)
    rcpts = [g for g in groups if "final-recipient" in g]
    assert len(rcpts) == 1
    g = rcpts[0]
    assert g["final-recipient"].lower() == "rfc822; bad@remote.example"
    assert g["action"] == "failed"
    assert g["status"] == "5.1.1"
    assert "550 5.1.1 no such user here" in g["diagnostic-code"]
    assert g["remote-mta"].startswith("dns;")
    orig = [p for p in dsn.get_payload() if p.get_content_type() == "text/rfc822-headers"]
    assert orig and "Message-ID: <three@client.test>" in orig[0].get_payload()
    # events and tracking
    assert dm.wait_event(3002, pred=lambda e: e.get("rcpt") == "temp@remote.example")
    assert dm.wait_event(3003, pred=lambda e: e.get("rcpt") == "bad@remote.example")
    assert dm.wait_event(3001, pred=lambda e: e.get("rcpt") == "ok@remote.example")
    trk = dm.tracking()
    assert any("\t1020\t" in l and "temp@remote.example" in l for l in trk)
    assert any("\t1021\t" in l and "bad@remote.example" in l for l in trk)
    # the DSN itself was delivered locally and left the queue
    assert wait_until(lambda: len(dm.queue_ids()) == 1, 5), dm.queue()


def test_421_mid_session_defers_rest_and_flush_retries(daemon, recorders):
    rec = recorders(shutdown_on=("MAIL", 2))
    dm = smarthost_daemon(daemon, rec.port, start=False)
    sent = [sendmail_offline(dm, "alice@localhost", ["u%d@remote.example" % i], "m%d\n" % i)
            for i in range(3)]
    dm.start()
    assert rec.wait_closed(1, timeout=10)
    assert wait_until(lambda: len(dm.events_with(3002)) == 2, 5), dm.events()
    assert [m.data for m in rec.sessions[0].messages] == [sent[0][1]]
    st = rcpt_states(dm)
    assert sorted(st) == ["u1@remote.example", "u2@remote.example"]
    assert all(r["state"] == "pending" and r["attempts"] == 1 for r in st.values())
    assert all("421" in r["last_reply"] or "shut" in r["last_reply"] for r in st.values()), st
    ev = dm.events_with(3010)
    assert ev and ev[-1]["cause"] == "server-shutdown"
    # the retry is 15 minutes away; flush sends now
    rec.shutdown_on = None
    flush(dm)
    assert rec.wait_closed(2, timeout=10)
    assert wait_until(lambda: dm.queue_ids() == [], 5), dm.queue()
    got = [m.data for s in rec.sessions for m in s.messages]
    assert got == [c for _, c in sent]  # each exactly once


def test_drop_after_final_dot_keeps_message_queued(daemon, recorders):
    rec = recorders(drop_after_data=1)
    dm = smarthost_daemon(daemon, rec.port)
    r = send_message(dm.port, "alice@localhost", ["far@remote.example"],
                     b"Subject: dropped\r\n\r\nbody\r\n")
    assert r.code == 250
    assert rec.wait_closed(1, timeout=10)
    assert wait_until(lambda: dm.events_with(3002), 5), dm.events()
    st = rcpt_states(dm)
    assert st["far@remote.example"]["state"] == "pending"
    assert "may have been delivered" in st["far@remote.example"]["last_reply"]
    assert len(rec.sessions[0].messages) == 1  # the server had it: a duplicate is next
    rec.drop_after_data = None
    flush(dm)
    assert wait_until(lambda: dm.queue_ids() == [], 10), dm.queue()
    assert len(rec.sessions) == 2 and len(rec.sessions[1].messages) == 1
    assert rec.sessions[1].messages[0].data == rec.sessions[0].messages[0].data


def test_tls_required_but_not_offered_defers_and_sends_nothing_in_clear(daemon, recorders):
    rec = recorders(extensions=["PIPELINING", "CHUNKING"])
    dm = smarthost_daemon(daemon, rec.port, route_opts="tls=required")
    r = send_message(dm.port, "alice@localhost", ["far@remote.example"],
                     b"Subject: secret\r\n\r\nsecret body\r\n")
    assert r.code == 250
    assert rec.wait_closed(1, timeout=10)
    assert wait_until(lambda: dm.events_with(3002), 5), dm.events()
    wire = rec.sessions[0].client_bytes()
    assert re.fullmatch(rb"EHLO [^\r\n]+\r\nQUIT\r\n", wire), wire
    st = rcpt_states(dm)
    assert st["far@remote.example"]["state"] == "pending"
    ev = dm.events_with(3010)
    assert ev and ev[-1]["cause"] == "tls-not-offered"


def send_one_and_wait(dm, rec, i):
    """Message i to the smarthost rec, on a connection of its own."""
    r = send_message(dm.port, "alice@localhost", ["far%d@remote.example" % i],
                     b"Subject: %d\r\n\r\nbody\r\n" % i)
    assert r.code == 250
    assert rec.wait_closed(i + 1, timeout=10)
    assert wait_until(lambda: len(dm.events_with(3001)) == i + 1, 5), dm.events()


def test_tls_session_resumed_on_the_next_connection(daemon, recorders, tmp_path):
    """Each connection to a TLS smarthost keeps the session the server gave
    in DIR/tls (0700; the file 0600, named after the address): the next
    connection resumes it instead of a full handshake (a certificate chain
    less on the line)."""
    ca = make_ca(tmp_path, "ca")
    srv = make_server_cert(ca)
    rec = recorders(extensions=["PIPELINING", "STARTTLS"], certfile=str(srv["cert"]),
                    keyfile=str(srv["key"]))
    dm = smarthost_daemon(daemon, rec.port, route_opts="tls=required ca=%s" % ca["cert"])
    for i in range(2):
        send_one_and_wait(dm, rec, i)
    assert [s.tls for s in rec.sessions] == [True, True]
    assert [s.tls_resumed for s in rec.sessions] == [False, True]
    kept = dm.dir / "tls" / ("127.0.0.1_%d" % rec.port)
    assert kept.stat().st_mode & 0o777 == 0o600
    assert (dm.dir / "tls").stat().st_mode & 0o777 == 0o700


def test_early_ehlo_once_the_peer_is_known_to_be_dialmail(daemon, recorders):
    """The first connection waits for the greeting; it says "ESMTP dialmail",
    which is remembered (DIR/peers/ADDR_PORT), and the next connection sends
    EHLO at once, a one-way delay earlier. A peer whose greeting is anyone
    else's is forgotten again."""
    rec = recorders(extensions=["PIPELINING", "CHUNKING"], banner_delay=0.4,
                    banner="220 hub.test ESMTP dialmail")
    dm = smarthost_daemon(daemon, rec.port)
    mark = dm.dir / "peers" / ("127.0.0.1_%d" % rec.port)
    orders = []
    for i in range(2):
        send_one_and_wait(dm, rec, i)
        orders.append([d for _, d, data in rec.sessions[i].log if d in "CS" and data][0])
    assert orders == ["S", "C"], orders
    assert mark.exists()
    rec.banner = "220 other.test ESMTP Postfix"
    r = send_message(dm.port, "alice@localhost", ["far2@remote.example"], b"Subject: 2\r\n\r\nb\r\n")
    assert r.code == 250
    assert wait_until(lambda: len(dm.events_with(3001)) == 3, 10), dm.events()
    assert wait_until(lambda: not mark.exists(), 5)


def test_parallel_connections_towards_a_server_without_chunking(daemon, recorders):
    """Without CHUNKING each message waits a round trip for its 354: once a
    destination is known not to offer it, its waiting messages are shared
    among max_connections_without_chunking connections (3 here) instead of
    going one after the other on one; with CHUNKING one connection carries
    them all. What the server offers is remembered across a restart."""
    for chunking, want in ((False, [3, 3, 2]), (True, [8])):
        ext = ["PIPELINING"] + (["CHUNKING"] if chunking else [])
        rec = recorders(extensions=ext, delay=0.05)
        dm = smarthost_daemon(daemon, rec.port, "max_connections_without_chunking = 3",
                              "retry_intervals = 1h")
        send_one_and_wait(dm, rec, 0)                 # learns what the server offers
        port = rec.port
        mark = dm.dir / "peers" / ("127.0.0.1_%d.nochunking" % port)
        assert mark.exists() != chunking              # kept across restarts
        dm.stop()
        dm.start()
        rec.stop()
        for i in range(1, 9):                         # refused: they wait
            r = send_message(dm.port, "alice@localhost", ["far%d@remote.example" % i],
                             b"Subject: %d\r\n\r\nbody\r\n" % i)
            assert r.code == 250
        assert wait_until(lambda: len(dm.events_with(3002)) >= 8, 10), dm.events()
        again = recorders(port=port, extensions=ext, delay=0.05)
        assert dm.cli("flush", "--dir", str(dm.dir)).returncode == 0
        assert wait_until(lambda: sum(len(x.messages) for x in again.sessions) == 8, 15)
        assert again.wait_closed(len(again.sessions))
        assert sorted((len(x.messages) for x in again.sessions), reverse=True) == want
        dm.stop()


def test_expired_message_bounces_to_local_sender(daemon, recorders):
    rec = recorders(rcpt_replies={"slow@remote.example": "452 4.2.2 mailbox full"})
    dm = smarthost_daemon(daemon, rec.port, "lifetime_normal = 2s", "retry_intervals = 1h")
    r = send_message(dm.port, "alice@localhost", ["slow@remote.example"],
                     b"Subject: old\r\n\r\nbody\r\n")
    assert r.code == 250
    assert wait_until(lambda: dm.events_with(3002), 10), dm.events()
    st = rcpt_states(dm)["slow@remote.example"]
    assert st["state"] == "pending"
    time.sleep(2.2)
    flush(dm)
    assert wait_until(lambda: dm.maildir_files("alice"), 10), dm.events()
    assert wait_until(lambda: dm.queue_ids() == [], 5), dm.queue()
    dsn = maildir_messages(dm, "alice")[0]
    g = [g for g in dsn_fields(dsn) if "final-recipient" in g][0]
    assert g["action"] == "failed"
    assert g["status"] == "4.4.7"
    assert "expired" in g["diagnostic-code"] and "452 4.2.2 mailbox full" in g["diagnostic-code"]
    assert len(rec.sessions) == 2  # the last try happened before the bounce


def test_null_sender_bounce_goes_to_postmaster(daemon, recorders):
    rec = recorders(rcpt_replies={"gone@remote.example": "550 5.1.1 gone"})
    dm = smarthost_daemon(daemon, rec.port)
    r = send_message(dm.port, "", ["gone@remote.example"],
                     b"Subject: a bounce itself\r\n\r\nbody\r\n")
    assert r.code == 250
    assert wait_until(lambda: dm.maildir_files("postmaster"), 10), dm.events()
    dsn = maildir_messages(dm, "postmaster")[0]
    assert "postmaster@localhost" in dsn["To"]
    g = [g for g in dsn_fields(dsn) if "final-recipient" in g][0]
    assert g["final-recipient"].lower() == "rfc822; gone@remote.example"
    assert dm.maildir_files("alice") == []
    assert wait_until(lambda: dm.queue_ids() == [], 5), dm.queue()


def test_no_route_stays_queued_with_one_event(daemon, recorders):
    dm = daemon("queue_run_interval = 1h", "[routes]", "branch.example = local")
    for i in range(2):
        r = send_message(dm.port, "alice@localhost", ["x@nowhere.example"],
                         b"Subject: no route\r\n\r\nbody\r\n")
        assert r.code == 250
    assert wait_until(lambda: len(dm.events_with(3004)) == 2, 5), dm.events()
    flush(dm)
    time.sleep(0.5)
    assert len(dm.events_with(3004)) == 2  # once per message, not per run
    assert all(e["domain"] == "nowhere.example" for e in dm.events_with(3004))
    assert len(dm.queue_ids()) == 2


def test_transfer_mode_none_accepts_nothing_but_delivers_queue(daemon, recorders):
    rec = recorders()
    dm = smarthost_daemon(daemon, rec.port, "transfer_mode = none", start=False)
    _, content = sendmail_offline(dm, "alice@localhost", ["far@remote.example"], "queued\n")
    dm.start()
    with dm.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd("MAIL FROM:<alice@localhost>")
        assert r.code in (421, 450), r
    assert rec.wait_closed(1, timeout=10)
    assert wait_until(lambda: dm.queue_ids() == [], 5)
    assert rec.sessions[0].messages[0].data == content


def test_transfer_mode_inbound_only_keeps_outbound_queued(daemon, recorders):
    rec = recorders()
    dm = smarthost_daemon(daemon, rec.port, "transfer_mode = inbound-only")
    r = send_message(dm.port, "alice@localhost", ["far@remote.example"], b"Subject: x\r\n\r\nx\r\n")
    assert r.code == 250
    flush(dm)
    time.sleep(0.7)
    assert rec.sessions == []
    assert rcpt_states(dm)["far@remote.example"]["state"] == "pending"


def test_via_link_waits_without_flush_delivering_it(daemon, recorders):
    """A route that needs a dial-up link is not delivered while the link is
    down, not even by flush; the mail waits silently."""
    rec = recorders()
    dm = smarthost_daemon(daemon, rec.port, route_opts="tls=none via=isp", start=False)
    try:
        dm.start()
    except AssertionError as e:  # a phone book entry may be required for via=
        pytest.skip("via= needs a phone book entry here: %s" % e)
    r = send_message(dm.port, "alice@localhost", ["far@remote.example"], b"Subject: x\r\n\r\nx\r\n")
    assert r.code == 250
    flush(dm)
    time.sleep(0.7)
    assert rec.sessions == []
    assert rcpt_states(dm)["far@remote.example"]["state"] == "pending"
    assert dm.events_with(3004) == [] and dm.events_with(3002) == []


def test_delay_warning_once_then_delivery(daemon, recorders):
    rec = recorders(rcpt_replies={"later@remote.example": "451 4.3.0 not now"})
    dm = smarthost_daemon(daemon, rec.port, "delay_warning_time = 1s", "retry_intervals = 1h")
    r = send_message(dm.port, "alice@localhost", ["later@remote.example"],
                     b"Subject: slow one\r\n\r\nbody\r\n")
    assert r.code == 250
    assert wait_until(lambda: dm.events_with(3002), 10)
    assert dm.maildir_files("alice") == []  # the first failure came before the warning time
    time.sleep(1.2)
    flush(dm)
    assert wait_until(lambda: dm.maildir_files("alice"), 10), dm.events()
    dsn = maildir_messages(dm, "alice")[0]
    g = [g for g in dsn_fields(dsn) if "final-recipient" in g][0]
    assert g["action"] == "delayed"
    assert g["status"] == "4.3.0" and "will-retry-until" in g
    flush(dm)  # another failure: no second warning
    assert wait_until(lambda: len(dm.events_with(3002)) == 3, 10)
    time.sleep(0.3)
    assert len(dm.maildir_files("alice")) == 1
    rec.rcpt_replies = {}
    flush(dm)
    assert wait_until(lambda: dm.queue_ids() == [], 10), dm.queue()


def test_mail_that_cannot_go_bounces_when_its_lifetime_ends(daemon, recorders):
    """Waiting for a link that never comes up, or for a route that does not
    exist, ends with a bounce once the lifetime is over."""
    rec = recorders()
    dm = daemon("local_recipients = alice", "queue_run_interval = 1h", "lifetime_normal = 1s",
                "[routes]", "linked.example = smarthost 127.0.0.1:%d tls=none via=isp" % rec.port)
    for rcpt in ("a@linked.example", "b@unrouted.example"):
        r = send_message(dm.port, "alice@localhost", [rcpt], b"Subject: waits\r\n\r\nbody\r\n")
        assert r.code == 250
    assert rcpt_states_pending(dm) == {"a@linked.example", "b@unrouted.example"}
    time.sleep(1.2)
    flush(dm)
    assert wait_until(lambda: len(dm.maildir_files("alice")) == 2, 10), dm.events()
    assert wait_until(lambda: dm.queue_ids() == [], 5), dm.queue()
    texts = {g["final-recipient"].split(";")[1].strip(): re.sub(r"\s+", " ", g["diagnostic-code"])
             for m in maildir_messages(dm, "alice") for g in dsn_fields(m)
             if "final-recipient" in g}
    assert "link isp was not up" in texts["a@linked.example"]
    assert "no route" in texts["b@unrouted.example"]
    assert all("4.4.7" in t for t in texts.values())
    assert rec.sessions == []


def rcpt_states_pending(dm):
    return {a for a, r in rcpt_states(dm).items() if r["state"] == "pending"}


def test_lmtp_route_for_a_local_domain(daemon, recorders):
    """A local domain with an lmtp route goes to the site's mailbox server
    (here the recorder speaking LMTP), not to the Maildir; LMTP's
    per-recipient replies after the data defer or bounce only that one."""
    rec = recorders(lmtp=True, extensions=["PIPELINING", "ENHANCEDSTATUSCODES"],
                    lmtp_replies={"bob@branch.example": "452 4.2.2 bob's mailbox is full"})
    dm = daemon("local_domains = localhost, branch.example", "local_recipients = alice, bob, carol",
                "queue_run_interval = 1h", "[routes]",
                "branch.example = lmtp 127.0.0.1:%d" % rec.port)
    r = send_message(dm.port, "alice@localhost", ["carol@branch.example", "bob@branch.example"],
                     b"Subject: to the mailbox server\r\n\r\nbody\r\n")
    assert r.code == 250
    assert rec.wait_closed(1, timeout=10)
    assert wait_until(lambda: dm.events_with(2001), 5), dm.events()
    s = rec.sessions[0]
    assert s.client_bytes().startswith(b"LHLO ")
    assert s.messages[0].rcpts == ["carol@branch.example", "bob@branch.example"]
    st = rcpt_states(dm)
    assert "carol@branch.example" not in st or st["carol@branch.example"]["state"] == "delivered"
    assert st["bob@branch.example"]["state"] == "pending"
    assert dm.maildir_files("carol") == [] and dm.maildir_files("bob") == []
    assert dm.wait_event(3001, pred=lambda e: e["rcpt"] == "carol@branch.example")


def test_lmtp_route_duplicate_is_not_handed_off_twice(daemon, recorders):
    """dedup_window covers the hand-off to the site's mailbox server too: a
    resent copy (same Message-ID, same recipient) is not sent to the LMTP
    server again (event 2023); another recipient still gets it."""
    rec = recorders(lmtp=True, extensions=["PIPELINING", "ENHANCEDSTATUSCODES"])
    dm = daemon("local_domains = localhost, branch.example", "local_recipients = alice, bob",
                "queue_run_interval = 1s", "[routes]",
                "branch.example = lmtp 127.0.0.1:%d" % rec.port)
    msg = b"Subject: twice\r\nMessage-ID: <resent.1@provider.test>\r\n\r\nbody\r\n"
    assert send_message(dm.port, "s@remote.example", ["alice@branch.example"], msg).code == 250
    assert wait_until(lambda: dm.events_with(3001), 10), dm.events()
    assert send_message(dm.port, "s@remote.example", ["alice@branch.example",
                                                       "bob@branch.example"], msg).code == 250
    ev = dm.wait_event(2023, 10)
    assert ev and ev[0]["rcpt"] == "alice@branch.example", dm.events()
    assert wait_until(lambda: dm.queue_ids() == [], 10), dm.queue()
    got = [(m.rcpts, m.data) for s in rec.sessions for m in s.messages]
    assert [r for r, _ in got] == [["alice@branch.example"], ["bob@branch.example"]], got
    assert [e["rcpt"] for e in dm.events_with(3001)] == ["alice@branch.example",
                                                         "bob@branch.example"]


def test_lmtp_unix_socket_to_real_dovecot(daemon, tmp_path):
    """The daemon hands a local domain's mail to a real Dovecot LMTP over
    its unix socket (the Dovecot of tests/lib/dovecot.py); the stored message
    is the queued one with Dovecot's own Return-Path/Delivered-To/Received
    lines in front."""
    dc = Dovecot(tmp_path)
    dc.start()
    try:
        dm = daemon("local_domains = localhost, branch.example", "local_recipients = alice",
                    "queue_run_interval = 1h", "[routes]",
                    "branch.example = lmtp unix:%s" % dc.socket)
        # wire form: "..dot" is the line ".dot" (RFC 5321 4.5.2), stuffed again towards LMTP
        body = b"Subject: via lmtp\r\nMessage-ID: <lmtp@client.test>\r\n\r\nline\r\n..dot\r\n"
        r = send_message(dm.port, "carol@remote.example", ["alice@branch.example"], body)
        assert r.code == 250
        assert wait_until(lambda: dc.inbox("alice"), 10), (dm.events(), dc.diagnostics())
        got = dc.inbox("alice")[0]
        assert got.endswith(b"Subject: via lmtp\nMessage-ID: <lmtp@client.test>\n\nline\n.dot\n")
        assert wait_until(lambda: dm.queue_ids() == [], 5), dm.queue()
        assert dm.maildir_files("alice") == []
        ev = dm.events_with(3001)
        assert ev and ev[0]["rcpt"] == "alice@branch.example"
    finally:
        dc.stop()


def test_parallel_connections_follow_the_link_bandwidth_delay_product(daemon, recorders):
    """Towards a server without CHUNKING through a link (via=): the first
    call learns that and the server's round trip (its greeting's delay);
    the next call opens 1 + ceil(bandwidth x round trip / mean message size)
    connections, at most max_connections_without_chunking. A 2400 bit/s link
    and a 0.2 s round trip hold 60 bytes, less than one of the 8 messages
    (a few hundred bytes with their trace header): 2 connections; unknown
    bandwidth (0): the cap, 4."""
    for bandwidth, want in ((2400, [4, 4]), (0, [2, 2, 2, 2])):
        rec = recorders(extensions=["PIPELINING"], delay=0.05, banner_delay=0.2)
        dm = daemon("local_recipients = alice", "queue_run_interval = 1h",
                    "max_connections_without_chunking = 4", "retry_intervals = 1h",
                    "[routes]", "* = smarthost 127.0.0.1:%d tls=none via=lan" % rec.port,
                    "[phonebook lan]", "type = always", "bandwidth = %d" % bandwidth,
                    "[session]", "idle_timeout = 1s")
        for i in range(9):
            if i == 1:  # the first call: one message, the server is learnt
                assert dm.cli("dial", "--dir", str(dm.dir)).returncode == 0
                assert wait_until(lambda: len(rec.sessions) == 1, 10), dm.events()
            r = send_message(dm.port, "alice@localhost", ["far%d@remote.example" % i],
                             b"Subject: %d\r\n\r\nbody\r\n" % i)
            assert r.code == 250
        assert dm.cli("dial", "--dir", str(dm.dir)).returncode == 0
        assert wait_until(lambda: sum(len(x.messages) for x in rec.sessions) == 9, 15)
        assert rec.wait_closed(len(rec.sessions))
        got = sorted((len(x.messages) for x in rec.sessions[1:]), reverse=True)
        assert got == want, (bandwidth, got)
        dm.stop()
