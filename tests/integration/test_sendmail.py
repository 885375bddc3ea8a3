"""The sendmail interface, mailq and `dialmail queue`, run as a user would:
the real binary called through symlinks named sendmail and mailq, a private
state directory, and (for the kick) a running daemon on a free loopback port.
"""
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ports import free_port
from queuefile import write_queue

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DIALMAIL_BIN", ROOT / "build" / "dialmail")).resolve()

EX_USAGE, EX_DATAERR, EX_NOUSER = 64, 65, 67


class Spool:
    """A state directory, a config file and the sendmail/mailq names."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "spool"
        self.dir.mkdir()  # an installed spool exists before any mail (see test_cli_manners)
        self.port = free_port()
        self.config = tmp / "dialmail.conf"
        self.config.write_text(
            "hostname = gw.example\n"
            "local_domains = example.org, localhost\n"
            "local_recipients = alice, bob\n"
            f"listen = 127.0.0.1:{self.port}\n"
            "queue_run_interval = 1h\n"
            "syslog = no\n"
            "run_as_root = yes\n"
        )
        bindir = tmp / "bin"
        bindir.mkdir()
        for name in ("sendmail", "mailq"):
            (bindir / name).symlink_to(BIN)
        self.sendmail_bin = str(bindir / "sendmail")
        self.mailq_bin = str(bindir / "mailq")
        self.env = dict(os.environ, DIALMAIL_DIR=str(self.dir), DIALMAIL_CONFIG=str(self.config))

    def run(self, argv, stdin=b""):
        return subprocess.run(argv, input=stdin, capture_output=True, env=self.env, timeout=30)

    def sendmail(self, *args, stdin=b""):
        return self.run([self.sendmail_bin, *args], stdin)

    def dialmail(self, *args, stdin=b""):
        return self.run([str(BIN), *args], stdin)

    def events_bytes(self):
        try:
            return (self.dir / "log" / "events.jsonl").read_bytes().replace(b" ", b"")
        except OSError:
            return b""

    def queue_json(self):
        r = self.dialmail("queue", "--dir", str(self.dir), "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def only_message(self):
        q = self.queue_json()
        assert len(q) == 1, q
        return q[0]

    def queue_file(self, qid):
        return (self.dir / "queue" / qid).read_bytes()

    def content(self, qid):
        """The stored message text: it starts with our Received: header and
        is as long as the envelope's size says."""
        (m,) = [m for m in self.queue_json() if m["id"] == qid]
        data = self.queue_file(qid)
        start = data.index(b"Received: ")
        return data[start:start + m["size"]]

    def queued_ids(self):
        qdir = self.dir / "queue"
        return sorted(p.name for p in qdir.iterdir()) if qdir.exists() else []


@pytest.fixture
def spool(tmp_path):
    if not BIN.exists():
        pytest.fail(f"{BIN} not built (make)")
    return Spool(tmp_path)


MSG_T = (
    b"From: Sender <sender@example.org>\n"
    b"To: Alice <alice@example.org>,\n"
    b"  \"Smith, Bob\" <bob>\n"
    b"Cc: carol@remote.example (Carol, at home)\n"
    b"Bcc: hidden@remote.example,\n"
    b"\tpostmaster\n"
    b"Subject: extraction\n"
    b"\n"
    b"Body line.\n"
)


def test_t_takes_to_cc_bcc_and_drops_bcc_from_content(spool):
    r = spool.sendmail("-t", "-i", "extra@remote.example", stdin=MSG_T)
    assert r.returncode == 0, r.stderr
    m = spool.only_message()
    addrs = [x["addr"] for x in m["recipients"]]
    assert addrs == [
        "extra@remote.example",
        "alice@example.org",
        "bob@example.org",
        "carol@remote.example",
        "hidden@remote.example",
        "postmaster@example.org",
    ]
    assert all(x["state"] == "pending" and x["attempts"] == 0 for x in m["recipients"])
    assert b"Bcc" not in spool.queue_file(m["id"])
    # The envelope lists the hidden recipient; the stored message text does not.
    content = spool.content(m["id"])
    assert b"hidden@remote.example" not in content
    assert b"Subject: extraction\r\n" in content
    assert b"\r\n\r\nBody line.\r\n" in content
    assert m["sender"].endswith("@gw.example")


def test_t_group_and_no_recipients(spool):
    r = spool.sendmail("-t", stdin=b"To: undisclosed-recipients:;\nSubject: x\n\nhi\n")
    assert r.returncode == EX_USAGE
    assert b"no recipients" in r.stderr
    assert spool.queued_ids() == []


def test_t_malformed_header_is_refused(spool):
    r = spool.sendmail("-t", stdin=b"To: Alice <alice@example.org\n\nhi\n")
    assert r.returncode == EX_DATAERR
    assert b"To" in r.stderr
    assert spool.queued_ids() == []


def test_dot_ends_input_unless_i(spool):
    msg = b"Subject: dots\n\nline1\r\n..two dots\n.leading\n.\nafter the dot\n"
    r = spool.sendmail("alice", stdin=msg)
    assert r.returncode == 0, r.stderr
    (qid,) = spool.queued_ids()
    data = spool.queue_file(qid)
    assert b"\r\nline1\r\n..two dots\r\n.leading\r\n" in data
    assert b"after the dot" not in data

    for flag in ("-i", "-oi"):
        r = spool.sendmail(flag, "bob", stdin=msg)
        assert r.returncode == 0, r.stderr
    for qid in spool.queued_ids()[1:]:
        content = spool.content(qid)
        assert content.endswith(b"\r\nline1\r\n..two dots\r\n.leading\r\n.\r\nafter the dot\r\n")
        assert b"\n" not in content.replace(b"\r\n", b"")  # every LF became CRLF


def test_sender_options_and_added_headers(spool):
    r = spool.sendmail("-f", "boss@example.net", "-F", "The Boss", "alice", stdin=b"hello\n")
    assert r.returncode == 0, r.stderr
    m = spool.only_message()
    assert m["sender"] == "boss@example.net"
    assert m["client"] == "local"
    assert m["message_id"] == f"<{m['id']}@gw.example>"
    show = spool.dialmail("queue", "show", m["id"], "--dir", str(spool.dir))
    assert show.returncode == 0, show.stderr
    out = show.stdout.decode()
    assert "sender:     <boss@example.net>" in out
    assert "From: The Boss <boss@example.net>" in out
    assert "Date: " in out
    assert f"Message-ID: <{m['id']}@gw.example>" in out
    assert f"with local id {m['id']}" in out
    assert out.index("Received: ") < out.index("From: ")
    # A body without header lines stays the body.
    assert spool.content(m["id"]).endswith(b"\r\n\r\nhello\r\n")


def test_r_and_null_sender(spool):
    assert spool.sendmail("-r", "<>", "alice", stdin=b"x\n").returncode == 0
    assert spool.only_message()["sender"] == ""


def test_existing_message_id_is_kept(spool):
    r = spool.sendmail("alice", stdin=b"Message-ID: <keep.me@client>\nSubject: s\n\nb\n")
    assert r.returncode == 0, r.stderr
    m = spool.only_message()
    assert m["message_id"] == "<keep.me@client>"
    assert spool.queue_file(m["id"]).count(b"Message-ID") == 1


def test_unknown_local_user_is_queued_for_a_bounce(spool):
    """As sendmail and Postfix do: the message is taken, delivery bounces the
    unknown recipient alone (tests/integration/test_submit_local.py)."""
    r = spool.sendmail("alice", "nosuchuser", stdin=b"Subject: x\n\nhi\n")
    assert r.returncode == 0, r.stderr
    m = spool.only_message()
    assert [x["addr"] for x in m["recipients"]] == ["alice@example.org",
                                                   "nosuchuser@example.org"]


def test_invalid_address_is_refused(spool):
    r = spool.sendmail("alice@", stdin=b"hi\n")
    assert r.returncode == EX_DATAERR
    assert spool.queued_ids() == []


def test_no_recipients_and_bad_option(spool):
    r = spool.sendmail(stdin=b"hi\n")
    assert r.returncode == EX_USAGE
    assert b"sendmail: no recipients" in r.stderr
    r = spool.sendmail("-Z", "alice", stdin=b"hi\n")
    assert r.returncode == EX_USAGE
    assert b"usage: sendmail" in r.stderr
    assert spool.queued_ids() == []


def test_ignored_options_are_accepted(spool):
    r = spool.sendmail("-oem", "-odb", "-bm", "-v", "-oi", "--", "alice", stdin=b"x\n")
    assert r.returncode == 0, r.stderr
    (qid,) = spool.queued_ids()
    assert qid.encode() in r.stderr  # -v says the queue id


def test_dialmail_sendmail_with_dir_and_config_options(spool, tmp_path):
    other = tmp_path / "other"
    env = {k: v for k, v in spool.env.items() if not k.startswith("DIALMAIL_")}
    r = subprocess.run(
        [str(BIN), "sendmail", "--dir", str(other), "--config", str(spool.config), "bob"],
        input=b"x\n", capture_output=True, env=env, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert len(list((other / "queue").iterdir())) == 1
    assert spool.queued_ids() == []


def test_mailq_listing(spool):
    r = spool.run([spool.mailq_bin])
    assert r.returncode == 0
    assert r.stdout == b"Mail queue is empty\n"
    assert spool.sendmail("-f", "a@remote.example", "alice", "bob", stdin=b"x" * 3000 + b"\n").returncode == 0
    assert spool.sendmail("carol@remote.example", stdin=b"y\n").returncode == 0
    ids = spool.queued_ids()
    kbytes = (sum(m["size"] for m in spool.queue_json()) + 1023) // 1024
    for argv in ([spool.mailq_bin], [spool.sendmail_bin, "-bp"], [str(BIN), "mailq"]):
        out = spool.run(argv).stdout.decode()
        lines = out.splitlines()
        assert lines[0] == "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
        first = next(l for l in lines if l.startswith(ids[0]))
        assert first.split()[1].isdigit() and int(first.split()[1]) > 3000
        assert first.endswith(" a@remote.example")
        assert any(l.strip() == "alice@example.org" and l.startswith(" ") for l in lines)
        assert any(l.strip() == "carol@remote.example" for l in lines)
        assert lines[-1] == f"-- {kbytes} Kbytes in 2 Requests."


def test_queue_table_and_show(spool):
    r = spool.dialmail("queue", "--dir", str(spool.dir))
    assert r.returncode == 0
    assert spool.queue_json() == []
    assert spool.sendmail("-t", stdin=MSG_T).returncode == 0
    m = spool.only_message()
    r = spool.dialmail("queue", "--dir", str(spool.dir))
    head, row = r.stdout.decode().splitlines()[:2]
    assert head.split() == ["ID", "AGE", "SIZE", "SENDER", "RECIPIENTS", "STATE"]
    assert row.startswith(m["id"]) and row.endswith("pending")
    assert "alice@example.org" in row
    assert row.split()[1].endswith("s")

    show = spool.dialmail("queue", "show", m["id"], "--dir", str(spool.dir))
    out = show.stdout.decode()
    assert show.returncode == 0
    assert f"id:         {m['id']}" in out
    for rcpt in ("alice@example.org", "bob@example.org", "hidden@remote.example"):
        assert rcpt in out
    headers = out.split("headers:\n", 1)[1]
    assert "Subject: extraction" in headers
    assert "Bcc" not in headers and "Body line." not in headers

    js = json.loads(spool.dialmail("queue", "show", m["id"], "--json").stdout)
    assert js["id"] == m["id"] and len(js["recipients"]) == 5


def test_queue_show_bad_ids(spool):
    for bad in ("nonsense", "../../etc/passwd", "0" * 22):
        r = spool.dialmail("queue", "show", bad, "--dir", str(spool.dir))
        assert r.returncode == 1, bad
        assert r.stderr
    assert not (spool.dir / "queue").exists()  # reading created nothing


def wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@contextlib.contextmanager
def running_daemon(spool):
    """The daemon on spool's directory and configuration, stopped after."""
    proc = subprocess.Popen(
        [str(BIN), "daemon", "--dir", str(spool.dir), "--config", str(spool.config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=spool.env,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_running_daemon_delivers_after_kick(spool):
    with running_daemon(spool):
        ctl = spool.dir / "control.sock"
        assert wait_for(ctl.exists, 10), "daemon did not open its control socket"
        r = spool.sendmail("-i", "alice", stdin=b"Subject: kick\n\nvia sendmail\n")
        assert r.returncode == 0, r.stderr
        new = spool.dir / "mail" / "alice" / "Maildir" / "new"
        # queue_run_interval is 1h: only the kick makes this prompt.
        assert wait_for(lambda: new.exists() and any(new.iterdir()), 5)
        (f,) = list(new.iterdir())
        text = f.read_bytes()
        assert b"Subject: kick\n" in text and b"via sendmail\n" in text
        assert wait_for(lambda: spool.queue_json() == [], 5)
        events = (spool.dir / "log" / "events.jsonl").read_text().splitlines()
        assert any(json.loads(e)["id"] == 2015 for e in events)


def test_listing_right_after_sendmail_shows_the_message(spool):
    """sendmail writes the queue file itself and names it in its kick: the
    running daemon's listing (from its index) has it when sendmail returns,
    before the queue pass the kick starts has got through a large queue."""
    n = 20000
    write_queue(str(spool.dir), n, lambda i: "old%d@far.example" % i, size=300)
    with running_daemon(spool):
        assert wait_for(lambda: b'"id":1005' in spool.events_bytes(), 60)
        for i in range(3):
            r = spool.sendmail("-i", "-f", "me@gw.example", "far%d@far.example" % i,
                               stdin=b"Subject: listed\n\nx\n")
            assert r.returncode == 0, r.stderr
            q = spool.queue_json()  # no route for far.example: it stays queued
            assert len(q) == n + i + 1, len(q)
            assert q[-1]["recipients"][0]["addr"] == "far%d@far.example" % i
            assert q[-1]["sender"] == "me@gw.example"


def test_low_disk_space_is_a_temporary_failure(spool, tmp_path):
    import shutil

    if shutil.disk_usage(tmp_path).free >= 1024**4:
        pytest.skip("the test file system has more than 1T free")
    spool.config.write_text(spool.config.read_text() + "min_free_space = 1024G\n")
    r = spool.sendmail("alice", stdin=b"Subject: x\n\nhi\n")
    assert r.returncode == 75
    assert b"free disk space" in r.stderr
    assert spool.queued_ids() == []
    assert list((spool.dir / "tmp").iterdir()) == []


def test_queue_json_survives_non_utf8_sender(spool):
    r = spool.sendmail("-f", b"j\xf6rg@remote.example", "alice", stdin=b"x\n")
    assert r.returncode == 0, r.stderr
    assert spool.only_message()["sender"] == "j?rg@remote.example"
