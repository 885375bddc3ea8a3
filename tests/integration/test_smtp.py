# The SMTP server as a client sees it: replies on the wire, files on disk,
# events. Every test starts its own daemon on a free loopback port.
import re
import smtplib
import socket
import subprocess
import time

import pytest

from daemon import files_under
from smtpraw import SmtpRaw, message, queued_id
from wait import wait_until

LOCAL = ("hostname = mx.test.example", "local_domains = example.org",
         "local_recipients = alice")


def ehlo_keywords(reply):
    return [line.split()[0].upper() if line.split() else "" for line in reply.lines[1:]]


def test_banner_and_ehlo_lists_exactly_the_extensions(daemon):
    d = daemon(*LOCAL, "max_message_size = 123456")
    with d.smtp() as c:
        assert c.banner.code == 220
        assert c.banner.lines[0].startswith("mx.test.example"), c.banner
        r = c.cmd("EHLO client.test")
        assert r.code == 250
        assert r.lines[0].startswith("mx.test.example"), r
        # Continuation lines use "250-", the last "250 ".
        assert r.raw.count(b"250-") == len(r.lines) - 1
        # Default config: no certificate, so no STARTTLS and no AUTH.
        assert ehlo_keywords(r) == [
            "PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"], r
        size = [line for line in r.lines[1:] if line.upper().startswith("SIZE")]
        assert size == ["SIZE 123456"], r


def test_default_size_limit_is_advertised(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        r = c.cmd("EHLO client.test")
        size = [line for line in r.lines[1:] if line.upper().startswith("SIZE")]
        assert len(size) == 1 and re.fullmatch(r"SIZE [1-9]\d*", size[0]), r
        assert int(size[0].split()[1]) >= 10 * 1000 * 1000


def test_helo_then_a_message(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        r = c.cmd("HELO client.test")
        assert r.code == 250 and r.lines[0].startswith("mx.test.example"), r
        assert len(r.lines) == 1, "HELO reply must not list extensions: %r" % r
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message("helo") + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        queued_id(r)


def test_simple_commands(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd("NOOP")
        assert r.code == 250 and r.lines[0].startswith("2.0.0"), r
        r = c.cmd("VRFY alice")
        assert r.code == 252, r
        r = c.cmd("HELP")
        assert r.code == 214, r
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        r = c.cmd("RSET")
        assert r.code == 250 and r.lines[0].startswith("2.0.0"), r
        # RSET forgot the transaction: RCPT is out of order again.
        assert c.cmd("RCPT TO:<alice@example.org>").code == 503
        r = c.cmd("FROBNICATE now")
        assert r.code == 500 and r.lines[0].startswith("5.5."), r
        r = c.cmd("QUIT")
        assert r.code == 221 and r.lines[0].startswith("2.0.0"), r
        assert c.closed(3.0), "connection left open after QUIT"


def test_commands_out_of_order_get_503(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd("RCPT TO:<alice@example.org>")
        assert r.code == 503 and r.lines[0].startswith("5.5.1"), r
        assert c.cmd("DATA").code == 503
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        r = c.cmd("DATA")
        assert r.code == 503 and r.lines[0].startswith("5.5.1"), r
        assert c.cmd("MAIL FROM:<b@client.test>").code == 503  # nested MAIL
        # The session goes on.
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("NOOP").code == 250
    assert d.queue() == []


@pytest.mark.parametrize("line", [
    "MAIL FROM:<unterminated@client.test",
    "MAIL TO:<a@client.test>",
    "MAIL",
    "EHLO",
    "HELO",
])
def test_bad_syntax_gets_501(daemon, line):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        if not line.startswith(("EHLO", "HELO")):
            assert c.cmd("EHLO client.test").code == 250
        r = c.cmd(line)
        assert r.code == 501 and r.lines[0].startswith("5."), (line, r)
        assert c.cmd("NOOP").code == 250


def test_bad_rcpt_syntax_gets_501(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        for line in ("RCPT TO:<alice@example.org", "RCPT TO:", "RCPT FROM:<alice@example.org>"):
            r = c.cmd(line)
            assert r.code == 501, (line, r)
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250


def test_swaks_local_delivery(daemon):
    d = daemon(*LOCAL)
    token = "body-token-%d" % time.time_ns()
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(d.port), "--helo", "client.test",
         "--from", "sender@client.test", "--to", "alice@example.org",
         "--header", "Subject: swaks test", "--body", "Hello Alice\n" + token + "\n"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"<-\s+250 .*queued as (\S+)", r.stdout)
    assert m, r.stdout
    qid = m.group(1)

    files = wait_until(lambda: d.maildir_files("alice"), 10)
    assert len(files) == 1, files
    data = files[0].read_bytes()
    assert token.encode() in data
    assert b"\r" not in data, "Maildir file must have LF line ends"
    head = data.split(b"\n\n", 1)[0]
    assert re.search(rb"(?m)^Received: from client\.test \(.*\[127\.0\.0\.1\]\)", head), head
    assert re.search(rb"(?m)^\s+by mx\.test\.example\b", head), head
    assert qid.encode() in head, "Received: should carry the queue id"
    assert re.search(rb"(?m)^Return-Path: <sender@client.test>", head), head
    assert re.search(rb"(?m)^Delivered-To: <?alice@example.org", head), head
    assert re.search(rb"(?m)^Subject: swaks test", head)

    ev = d.wait_event(2002, pred=lambda e: qid in str(e))
    assert ev, d.events()
    assert ev[0]["severity"] == "information"
    lines = wait_until(lambda: [ln for ln in d.tracking() if qid in ln], 5)
    assert lines, d.tracking()
    assert any("1012" in ln.split("\t") or "received" in ln.lower() for ln in lines), lines
    assert wait_until(lambda: any("1013" in ln.split("\t") for ln in d.tracking() if qid in ln), 5), \
        d.tracking()
    # Delivered: the queue no longer holds it.
    assert wait_until(lambda: qid not in d.queue_ids(), 5)


def test_remote_mail_from_mynetworks_stays_queued_with_message_id(daemon):
    d = daemon(*LOCAL)
    token = "remote-token-%d" % time.time_ns()
    data = message("no id", body=token, msgid=False)
    assert b"Message-ID" not in data
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("sender@client.test")[0] == 250
        assert s.rcpt("remote@other.example")[0] == 250
        code, resp = s.data(data)
    assert code == 250, resp
    qid = queued_id(resp.decode())

    entries = d.queue()
    mine = [e for e in entries if e.get("id") == qid]
    assert len(mine) == 1, entries
    dump = str(mine[0])
    assert "remote@other.example" in dump and "pending" in dump, mine
    assert "sender@client.test" in dump
    assert not d.maildir_files("remote")
    # Tracking says it is queued outbound (1010), once, with no state write.
    assert wait_until(lambda: [ln for ln in d.tracking()
                               if qid in ln and "1010" in ln.split("\t")], 5), d.tracking()
    assert not (d.dir / "state" / qid).exists()

    # The queue file holds the content in wire form, with a Message-ID added.
    holders = [f for f in files_under(d.dir / "queue") if token.encode() in f.read_bytes()]
    assert len(holders) == 1, files_under(d.dir / "queue")
    content = holders[0].read_bytes()
    ids = re.findall(rb"(?im)^message-id:[ \t]*(<[^>\r\n]+>)", content)
    assert len(ids) == 1, content[:2000]
    assert b"\r\n" in content
    r = d.cli("queue", "--dir", str(d.dir), "show", qid, check=False)
    if r.returncode != 0:  # either option order is fine
        r = d.cli("queue", "show", qid, "--dir", str(d.dir))
    assert ids[0].decode() in r.stdout or token in r.stdout, r.stdout


def test_existing_message_id_is_kept(daemon):
    d = daemon(*LOCAL)
    data = message("keep", headers=["Message-ID: <mine.123@client.test>"], msgid=False)
    r = d.send("sender@client.test", ["remote@other.example"], data)
    assert r.code == 250, r
    holders = [f for f in files_under(d.dir / "queue") if b"mine.123" in f.read_bytes()]
    assert len(holders) == 1
    ids = re.findall(rb"(?im)^message-id:[ \t]*(\S+)", holders[0].read_bytes())
    assert ids == [b"<mine.123@client.test>"]


def test_dots_crlf_and_8bit_reach_the_maildir_intact(daemon):
    d = daemon(*LOCAL)
    # As sent (dot-stuffed by us, the client), and as the user must see it.
    body = ("line one\r\n..leading dot\r\n..\tdot tab\r\n...\r\nUTF-8: gr\u00fc\u00dfe\r\n" +
            "x" * 998 + "\r\nlast").encode()
    expect = ("line one\n.leading dot\n.\tdot tab\n..\nUTF-8: gr\u00fc\u00dfe\n" +
              "x" * 998 + "\nlast\n").encode()
    data = message("dots", body="") + body + b"\r\n"
    with SmtpRaw(d.port) as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test> BODY=8BITMIME").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(data + b".\r\n")
        r = c.reply()
    assert r.code == 250, r
    files = wait_until(lambda: d.maildir_files("alice"), 10)
    assert len(files) == 1
    got = files[0].read_bytes()
    assert expect in got, got[-1500:]


def test_null_sender_and_postmaster(daemon):
    d = daemon(*LOCAL)
    r = d.send("", ["postmaster@example.org"], message("bounce"))
    assert r.code == 250, r


def test_pipelining_replies_in_order(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        c.send(b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n"
               b"RCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
               b"RCPT TO:<remote@other.example>\r\nDATA\r\n")
        codes = [c.reply().code for _ in range(6)]
        assert codes == [250, 250, 250, 550, 250, 354], codes
        c.send(message("pipelined") + b".\r\nNOOP\r\nQUIT\r\n")
        r = c.reply()
        assert r.code == 250, r
        assert [x.code for x in c.replies_until_close()] == [250, 221]
    entries = d.queue()
    # alice is delivered locally, remote stays queued.
    assert wait_until(lambda: d.maildir_files("alice"), 10)
    assert any("remote@other.example" in str(e) for e in d.queue()), entries


def test_too_many_recipients_452(daemon):
    d = daemon(*LOCAL, "max_recipients = 3")
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        for i in range(3):
            assert c.cmd("RCPT TO:<r%d@other.example>" % i).code == 250
        r = c.cmd("RCPT TO:<r3@other.example>")
        assert r.code == 452, r
        assert r.lines[0].startswith("4.5.3"), r
        assert c.cmd("DATA").code == 354
        c.send(message("three") + b".\r\n")
        r = c.reply()
        assert r.code == 250
    qid = queued_id(r)
    entry = [e for e in d.queue() if e.get("id") == qid]
    assert entry and "r3@other.example" not in str(entry) and "r2@other.example" in str(entry)


def test_size_declared_at_mail_552(daemon):
    d = daemon(*LOCAL, "max_message_size = 10000")
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd("MAIL FROM:<a@client.test> SIZE=20000")
        assert r.code == 552, r
        assert r.lines[0].startswith("5.3.4"), r
        assert c.cmd("MAIL FROM:<a@client.test> SIZE=5000").code == 250


def test_oversized_body_552_nothing_queued(daemon):
    d = daemon(*LOCAL, "max_message_size = 10000")
    big = message("big", body=("y" * 70 + "\r\n") * 300)  # about 21 KB
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("RCPT TO:<remote@other.example>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(big + b".\r\n")
        r = c.reply()
        assert r.code == 552 and r.lines[0].startswith("5.3.4"), r
        assert c.cmd("NOOP").code == 250
    assert d.queue() == []
    assert files_under(d.dir / "queue") == []
    assert not d.maildir_files("alice")
    assert d.wait_event(2013)


def test_connection_limit_421(daemon):
    d = daemon(*LOCAL, "max_connections = 2")
    time.sleep(0.3)  # the banner probe's connection is gone
    a, b = d.smtp(), d.smtp()
    try:
        assert a.banner.code == 220 and b.banner.code == 220
        with SmtpRaw(d.port, banner=False) as c:
            r = c.reply()
            assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
            assert c.closed(3.0)
        assert a.cmd("NOOP").code == 250
        a.cmd("QUIT")
        a.close()

        def fourth():
            with SmtpRaw(d.port, banner=False) as c:
                return c.reply().code == 220
        assert wait_until(fourth, 5, 0.2), "slot not freed after a client left"
    finally:
        a.close()
        b.close()
    assert d.wait_event(2011)


def test_overlong_command_line_500(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"NOOP " + b"x" * 600 + b"\r\n")
        r = c.reply()
        assert r.code == 500, r
        # Only one reply for the long line, then the session goes on.
        assert c.cmd("NOOP").code == 250
        c.send(b"MAIL FROM:<" + b"a" * 520 + b"@client.test>\r\n")
        assert c.reply().code == 500


def test_overlong_text_line_refuses_message(daemon):
    d = daemon(*LOCAL)
    data = message("long line", body="z" * 1500)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        assert c.cmd("RCPT TO:<remote@other.example>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(data + b".\r\n")
        r = c.reply()
        assert 500 <= r.code < 600, r
        assert c.cmd("NOOP").code == 250
    assert d.queue() == []
    assert files_under(d.dir / "queue") == []
    assert d.wait_event(2014)


def test_nul_in_command_500(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"NO\x00OP\r\n")
        r = c.reply()
        assert r.code == 500, r
        c.send(b"MAIL FROM:<a@client.test>\x00 SIZE=10\r\n")
        assert 500 <= c.reply().code < 600
        assert c.cmd("NOOP").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250


def test_client_dropping_mid_data_queues_nothing(daemon):
    d = daemon(*LOCAL)
    for _ in range(3):
        c = d.smtp()
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("RCPT TO:<remote@other.example>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message("dropped", body="partial\r\n" * 1000))
        c.close()
    # Without the final dot, nothing is queued, and no temp file remains.
    assert wait_until(lambda: files_under(d.dir / "tmp") == [], 5), files_under(d.dir / "tmp")
    assert d.queue() == []
    assert files_under(d.dir / "queue") == []
    assert not d.maildir_files("alice")
    with d.smtp() as c:  # and the daemon still works
        assert c.cmd("NOOP").code == 250


def test_idle_session_times_out_421(daemon):
    d = daemon(*LOCAL, "smtp_timeout = 2s")
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        t0 = time.monotonic()
        r = c.reply(timeout=8)
        waited = time.monotonic() - t0
        assert r.code == 421 and r.lines[0].startswith("4."), r
        assert 1.5 <= waited <= 6, waited
        assert c.closed(3.0)
    assert d.wait_event(2012)


def test_sigterm_stops_cleanly_with_events(daemon):
    d = daemon(*LOCAL)
    assert d.wait_event(1000)
    assert d.stop() == 0
    assert d.events_with(1001)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", d.port), timeout=2).close()


def test_postmaster_without_domain_and_unknown_option(daemon):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        r = c.cmd("MAIL FROM:<a@client.test> FROBNICATE=1")
        assert r.code == 555, r
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        r = c.cmd("RCPT TO:<Postmaster>")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<alice@example.org> FROBNICATE=1")  # NOTIFY/ORCPT only
        assert r.code == 555, r


def test_aliases_deliver_to_every_target(daemon):
    d = daemon("local_domains = example.org", "local_recipients = alice, bob",
               "[aliases]", "sales = alice, bob")
    r = d.send("s@client.test", ["sales@example.org"], message("to sales", body="for sales"))
    assert r.code == 250, r
    for user in ("alice", "bob"):
        files = wait_until(lambda: d.maildir_files(user), 10)
        assert len(files) == 1, user
        assert b"for sales" in files[0].read_bytes()
    assert not (d.dir / "mail" / "sales").exists()
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        assert c.cmd("RCPT TO:<carol@example.org>").code == 550


def test_queue_ids_unique_and_sortable_by_time(daemon):
    d = daemon(*LOCAL)
    ids = []
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        for i in range(5):
            assert c.cmd("MAIL FROM:<a@client.test>").code == 250
            assert c.cmd("RCPT TO:<r@other.example>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(message("m%d" % i) + b".\r\n")
            ids.append(queued_id(c.reply()))
    assert ids == sorted(ids) and len(set(ids)) == 5, ids
    assert sorted(d.queue_ids()) == ids


def test_many_concurrent_sessions(daemon):
    import threading
    d = daemon(*LOCAL)
    results, errors = [], []

    def client(n):
        try:
            with d.smtp(timeout=20) as c:
                assert c.cmd("EHLO c%d.test" % n).code == 250
                for i in range(3):
                    assert c.cmd("MAIL FROM:<c%d@client.test>" % n).code == 250
                    assert c.cmd("RCPT TO:<r%d@other.example>" % n).code == 250
                    assert c.cmd("DATA").code == 354
                    c.send(message("c%d-%d" % (n, i)) + b".\r\n")
                    r = c.reply()
                    assert r.code == 250, r
                    results.append(queued_id(r))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=client, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 120 and len(set(results)) == 120
    assert sorted(d.queue_ids()) == sorted(results)


def test_data_timeout_421_nothing_queued(daemon):
    d = daemon(*LOCAL, "smtp_timeout = 60s", "smtp_data_timeout = 2s")
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        assert c.cmd("RCPT TO:<r@other.example>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: stalled\r\n\r\nsome text\r\n")
        t0 = time.monotonic()
        r = c.reply(timeout=10)
        assert r.code == 421, r
        assert 1.5 <= time.monotonic() - t0 <= 8
        assert c.closed(3.0)
    assert wait_until(lambda: files_under(d.dir / "tmp") == [], 5)
    assert d.queue() == []


def test_ipv6_listener(daemon):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            port6 = s.getsockname()[1]
    except OSError:
        pytest.skip("no ::1")
    d = daemon(*LOCAL)
    d.stop()
    d.config.write_text(d.config.read_text().replace(
        "listen = 127.0.0.1:%d" % d.port, "listen = 127.0.0.1:%d, [::1]:%d" % (d.port, port6)))
    d.start()
    s = socket.create_connection(("::1", port6), timeout=10)
    with s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220 ")
        s.sendall(b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n"
                  b"RCPT TO:<r@other.example>\r\nDATA\r\n")
        for _ in range(12):  # EHLO is multi-line: read until DATA's 354
            line = f.readline()
            if line.startswith(b"354"):
                break
        assert line.startswith(b"354"), line
        s.sendall(message("v6") + b".\r\n")
        line = f.readline()
        assert line.startswith(b"250 "), line
    qid = queued_id(line.decode())
    holder = [x for x in files_under(d.dir / "queue") if qid in x.name]
    assert len(holder) == 1 and b"[::1]" in holder[0].read_bytes()


@pytest.mark.parametrize("total,code", [(512, 250), (513, 500)])
def test_command_line_limit_is_512_with_crlf(daemon, total, code):
    d = daemon(*LOCAL)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"NOOP " + b"x" * (total - 7) + b"\r\n")
        assert c.reply().code == code
        assert c.cmd("NOOP").code == 250


@pytest.mark.parametrize("chars,ok", [(998, True), (999, False)])
def test_text_line_limit_is_1000_with_crlf(daemon, chars, ok):
    d = daemon(*LOCAL)
    r = d.send("a@client.test", ["r@other.example"], message("edge", body="y" * chars))
    assert (r.code == 250) == ok, r
    if not ok:
        assert 500 <= r.code < 600
    assert len(d.queue()) == (1 if ok else 0)
