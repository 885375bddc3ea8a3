# Faults a mail store must survive: kill -9 while ten clients are sending
# (nothing acknowledged lost, nothing half-present) and a full disk (452
# 4.3.1, event 3018, nothing lost, accepting again once space returns).
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from daemon import files_under
from smtpraw import SmtpRaw, message, queued_id, send_message
from wait import wait_until

CONF = ("local_domains = example.org", "local_recipients = alice")


class Sender(threading.Thread):
    """Sends up to n messages on one connection (reconnecting is not
    needed: the daemon dies once), recording (token, qid, rcpt) per 250."""

    def __init__(self, port, tid, n, deadline):
        super().__init__(daemon=True)
        self.port, self.tid, self.n, self.deadline = port, tid, n, deadline
        self.acked = []
        self.error = None

    def run(self):
        try:
            with SmtpRaw(self.port, timeout=10) as c:
                assert c.cmd("EHLO sender%d.test" % self.tid).code == 250
                for i in range(self.n):
                    if time.monotonic() > self.deadline:
                        return
                    self.one(c, i)
        except (OSError, EOFError):
            pass  # the daemon was killed under us
        except Exception as e:  # noqa: BLE001
            self.error = repr(e)

    def one(self, c, i):
        token = "tok-%d-%d-%d" % (self.tid, i, time.time_ns())
        rcpt = "alice@example.org" if i % 7 == 3 else "r%d@other.example" % self.tid
        assert c.cmd("MAIL FROM:<s%d@client.test>" % self.tid).code == 250
        assert c.cmd("RCPT TO:<%s>" % rcpt).code == 250
        assert c.cmd("DATA").code == 354
        c.send(message(token, body=token + "\r\n" + "filler line\r\n" * 40) + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        self.acked.append((token, queued_id(r), rcpt))


def run_senders(d, stop_after, threads=10, per_thread=30, max_time=30):
    deadline = time.monotonic() + max_time
    senders = [Sender(d.port, t, per_thread, deadline) for t in range(threads)]
    for s in senders:
        s.start()
    wait_until(lambda: sum(len(s.acked) for s in senders) >= stop_after, max_time, 0.01)
    d.kill9()
    for s in senders:
        s.join(15)
    assert not any(s.is_alive() for s in senders)
    errors = [s.error for s in senders if s.error]
    assert errors == []
    return [a for s in senders for a in s.acked]


def delivered_tokens(d):
    out = set()
    for f in d.maildir_files("alice") + d.maildir_files("alice", "cur"):
        m = re.search(rb"tok-\d+-\d+-\d+", f.read_bytes())
        if m:
            out.add(m.group(0).decode())
    return out


def check_recovered(d, acked):
    assert wait_until(lambda: files_under(d.dir / "tmp") == [], 5), files_under(d.dir / "tmp")
    assert files_under(d.dir / "corrupt") == []
    entries = d.queue()
    ids = {e["id"] for e in entries}
    assert len(ids) == len(entries)
    # Local ones may be delivered by now; give delivery a moment.
    local = [a for a in acked if a[2] == "alice@example.org"]
    wait_until(lambda: all(a[0] in delivered_tokens(d) or a[1] in d.queue_ids()
                           for a in local), 10)
    ids = set(d.queue_ids())
    delivered = delivered_tokens(d)
    lost = [a for a in acked if a[1] not in ids and a[0] not in delivered]
    assert lost == [], "acknowledged but lost: %r" % lost[:10]
    # Every queue file is a listed, complete message: nothing half-present.
    qfiles = files_under(d.dir / "queue")
    assert len(qfiles) == len(ids), (len(qfiles), len(ids))
    for qid in sorted(ids):
        r = d.cli("queue", "show", qid, "--dir", str(d.dir), check=False)
        assert r.returncode == 0, (qid, r.stdout, r.stderr)
    # Delivered copies are whole messages (a crash between the Maildir write
    # and the state update may deliver twice: allowed, at-least-once).
    for f in d.maildir_files("alice"):
        data = f.read_bytes()
        assert data.count(b"filler line\n") == 40, f


def test_kill9_while_ten_clients_send(daemon):
    d = daemon(*CONF)
    acked = run_senders(d, stop_after=80)
    assert len(acked) >= 80
    d.start()
    check_recovered(d, acked)
    # More rounds on the recovered queue, killed again at other points.
    for stop_after in (60, 25):
        acked += run_senders(d, stop_after=stop_after)
        d.start()
        check_recovered(d, acked)
    assert d.events_with(1005)
    # And the daemon still accepts mail.
    r = d.send("late@client.test", ["late@other.example"], message("late"))
    assert r.code == 250, r


# --- disk full ---------------------------------------------------------

@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs (needs root): %s" % r.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_until_free(mnt, target_free):
    """Writes mnt/filler until at most target_free bytes are left."""
    filler = Path(mnt) / "filler"
    chunk = b"\0" * 4096
    with open(filler, "ab") as f:
        for _ in range(4096):
            if free_bytes(mnt) <= target_free:
                break
            try:
                f.write(chunk)
                f.flush()
            except OSError:
                break
    assert free_bytes(mnt) <= target_free
    return filler


def mail_until_452(c, data):
    """One transaction; the refusal may come at MAIL or after DATA."""
    r = c.cmd("MAIL FROM:<s@client.test>")
    if r.code != 250:
        return r
    assert c.cmd("RCPT TO:<r@other.example>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(data + b".\r\n")
    return c.reply()


def test_disk_below_min_free_space_452(tmpfs, daemon):
    d = daemon(*CONF, "min_free_space = 1M", dir=tmpfs)
    r = d.send("s@client.test", ["first@other.example"], message("first"))
    assert r.code == 250, r
    first = queued_id(r)

    filler = fill_until_free(tmpfs, 512 * 1024)
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        r = mail_until_452(c, message("while full"))
        assert r.code == 452 and r.lines[0].startswith("4.3.1"), r
        assert c.cmd("NOOP").code == 250
    assert d.wait_event(3018)
    assert d.queue_ids() == [first]
    assert files_under(tmpfs / "tmp") == []

    filler.unlink()

    def accepted():
        r = d.send("s@client.test", ["again@other.example"], message("again"))
        return r if r.code == 250 else None
    r = wait_until(accepted, 5, 0.5)
    assert r, "still refused after space returned"
    again = queued_id(r)
    assert sorted(d.queue_ids()) == sorted([first, again])
    assert d.wait_event(3019)


def test_enospc_during_commit_452_nothing_half_present(tmpfs, daemon):
    d = daemon(*CONF, "min_free_space = 0", dir=tmpfs)
    r = d.send("s@client.test", ["first@other.example"], message("first"))
    assert r.code == 250, r
    first = queued_id(r)

    filler = fill_until_free(tmpfs, 48 * 1024)
    big = message("too big for the disk", body=("b" * 76 + "\r\n") * 4000)  # ~310 KB
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        r = mail_until_452(c, big)
        assert r.code == 452 and r.lines[0].startswith("4.3.1"), r
        assert c.cmd("NOOP").code == 250
    assert d.queue_ids() == [first]
    assert len(files_under(tmpfs / "queue")) == 1
    assert wait_until(lambda: files_under(tmpfs / "tmp") == [], 5), files_under(tmpfs / "tmp")
    assert d.alive()

    filler.unlink()
    r = d.send("s@client.test", ["again@other.example"], big)
    assert r.code == 250, r
    assert sorted(d.queue_ids()) == sorted([first, queued_id(r)])
    # After a restart everything is still there and nothing is corrupt.
    d.restart()
    assert sorted(d.queue_ids()) == sorted([first, queued_id(r)])
    assert files_under(tmpfs / "corrupt") == []


# --- group commit --------------------------------------------------------
# Messages that end in the same event-loop pass are committed together; each
# session waits (its pipelined input kept) until its batch is durable.
import socket  # noqa: E402
import struct  # noqa: E402


def queue_file(d, qid):
    return (d.dir / "queue" / qid).read_bytes()


class BatchSender(threading.Thread):
    """Sends n messages to remote recipients, one connection each, and
    records (qid, exact message bytes) per 250."""

    def __init__(self, port, tid, n):
        super().__init__(daemon=True)
        self.port, self.tid, self.n = port, tid, n
        self.acked, self.error = [], None

    def run(self):
        try:
            for i in range(self.n):
                body = "gc-%d-%d\r\n" % (self.tid, i) + ("line %d of %d\r\n" % (i, self.tid)) * 60
                data = message("gc %d %d" % (self.tid, i), body=body)
                r = send_message(self.port, "s%d@client.test" % self.tid,
                                 ["r%d-%d@other.example" % (self.tid, i)], data)
                assert r.code == 250, r
                self.acked.append((queued_id(r), data))
        except Exception as e:  # noqa: BLE001
            self.error = repr(e)


def test_group_commit_ten_clients_every_250_queued_intact(daemon):
    d = daemon(*CONF)
    senders = [BatchSender(d.port, t, 20) for t in range(10)]
    for s in senders:
        s.start()
    for s in senders:
        s.join(60)
    assert [s.error for s in senders if s.error] == []
    acked = [a for s in senders for a in s.acked]
    assert len(acked) == 200
    assert len({qid for qid, _ in acked}) == 200
    assert set(d.queue_ids()) == {qid for qid, _ in acked}
    for qid, data in acked:
        f = queue_file(d, qid)
        # Stored in wire form after our Received: header, byte for byte.
        assert data in f, qid
        assert b"id " + qid.encode() in f
    assert files_under(d.dir / "tmp") == []
    # One "message received" event (2002) per 250, naming its queue id.
    assert wait_until(lambda: len(d.events_with(2002)) >= 200, 5)
    assert sorted(e.get("qid") for e in d.events_with(2002)) == sorted(q for q, _ in acked)


def test_pipelined_input_after_data_waits_for_commit(daemon):
    d = daemon(*CONF)
    m1, m2 = message("pipe one"), message("pipe two")
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"MAIL FROM:<p@client.test>\r\nRCPT TO:<x@other.example>\r\nDATA\r\n")
        assert [c.reply().code for _ in range(3)] == [250, 250, 354]
        # End of data, the next transaction and QUIT in one write: each
        # reply must come in order, the 250 for m1 before MAIL's.
        c.send(m1 + b".\r\nMAIL FROM:<p@client.test>\r\nRCPT TO:<y@other.example>\r\n"
               b"DATA\r\n" + m2 + b".\r\nQUIT\r\n")
        replies = c.replies_until_close(10)
    assert [r.code for r in replies] == [250, 250, 250, 354, 250, 221], replies
    ids = [queued_id(replies[0]), queued_id(replies[4])]
    assert ids[0] != ids[1]
    assert sorted(d.queue_ids()) == sorted(ids)
    assert m1 in queue_file(d, ids[0]) and m2 in queue_file(d, ids[1])


def test_half_closed_client_gets_its_250(daemon):
    d = daemon(*CONF)
    m = message("half closed")
    with d.smtp() as c:
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"MAIL FROM:<h@client.test>\r\nRCPT TO:<x@other.example>\r\nDATA\r\n")
        assert [c.reply().code for _ in range(3)] == [250, 250, 354]
        c.send(m + b".\r\nQUIT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        replies = c.replies_until_close(10)
    assert [r.code for r in replies] == [250, 221], replies
    assert d.queue_ids() == [queued_id(replies[0])]
    assert m in queue_file(d, queued_id(replies[0]))


def test_client_gone_before_reply_message_kept_daemon_fine(daemon):
    """Clients that send a whole message and reset the connection at once:
    whatever was committed is whole and listed, nothing stays in tmp/, and
    the daemon goes on (under ASan: no use after free)."""
    d = daemon(*CONF)
    msgs = []
    for i in range(20):
        m = message("gone %d" % i)
        msgs.append(m)
        c = d.smtp()
        assert c.cmd("EHLO client.test").code == 250
        c.send(b"MAIL FROM:<g@client.test>\r\nRCPT TO:<x@other.example>\r\nDATA\r\n")
        assert [c.reply().code for _ in range(3)] == [250, 250, 354]
        c.send(m + b".\r\n")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    r = d.send("late@client.test", ["late@other.example"], message("after"))
    assert r.code == 250, r
    assert wait_until(lambda: files_under(d.dir / "tmp") == [], 5)
    ids = d.queue_ids()
    assert queued_id(r) in ids
    assert len(files_under(d.dir / "queue")) == len(ids)
    for qid in ids:
        f = queue_file(d, qid)
        assert any(m in f for m in msgs) or b"Subject: after" in f, qid
    assert d.alive()


def test_burst_of_pipelined_clients_more_than_one_batch(daemon):
    """120 clients send a whole pipelined transaction at the same moment:
    more messages end in one loop pass than a batch holds (64). Each gets
    its replies in order and its own id; every message is queued intact."""
    d = daemon(*CONF, "max_connections = 200")
    n = 120
    conns = [d.smtp(timeout=30) for _ in range(n)]
    try:
        for c in conns:
            assert c.cmd("EHLO client.test").code == 250
        msgs = [message("burst %d" % i) for i in range(n)]
        for i, c in enumerate(conns):
            c.send(b"MAIL FROM:<b@client.test>\r\nRCPT TO:<x%d@other.example>\r\nDATA\r\n" % i
                   + msgs[i] + b".\r\nQUIT\r\n")
        replies = [c.replies_until_close(30) for c in conns]
    finally:
        for c in conns:
            c.close()
    for rs in replies:
        assert [r.code for r in rs] == [250, 250, 354, 250, 221], rs
    ids = [queued_id(rs[3]) for rs in replies]
    assert len(set(ids)) == n
    assert sorted(d.queue_ids()) == sorted(ids)
    for qid, m in zip(ids, msgs):
        assert m in queue_file(d, qid)
    assert files_under(d.dir / "tmp") == []


# --- stop while the committer thread syncs a batch ----------------------

def test_sigterm_while_ten_clients_send_stops_cleanly(daemon):
    """SIGTERM under load: the daemon finishes the batch its committer thread
    is syncing (answers it, logs it) and exits 0. Every 250 is in the queue
    or delivered, every queue file has its "received" event (2002), nothing
    is left in tmp/, and the queue recovers whole."""
    d = daemon(*CONF)
    deadline = time.monotonic() + 30
    senders = [Sender(d.port, t, 40, deadline) for t in range(10)]
    for s in senders:
        s.start()
    wait_until(lambda: sum(len(s.acked) for s in senders) >= 60, 30, 0.01)
    assert d.stop() == 0
    for s in senders:
        s.join(15)
    assert not any(s.is_alive() for s in senders)
    assert [s.error for s in senders if s.error] == []
    acked = [a for s in senders for a in s.acked]
    assert len(acked) >= 60
    assert files_under(d.dir / "tmp") == []
    received = {e.get("qid") for e in d.events_with(2002)}
    assert {a[1] for a in acked} <= received
    assert set(d.queue_ids()) <= received, set(d.queue_ids()) - received
    assert "Sanitizer" not in d.log_text()
    d.start()
    check_recovered(d, acked)
