# `dialmail events` against a real event log: a daemon runs through a few
# situations (mail received, relay denied, unknown user, bare LF, a damaged
# queue file), then each filter must return exactly the matching lines.
import json
import re
import subprocess

import pytest

from daemon import Daemon, files_under, parse_json_lines, write_config
from ports import free_port
from smtpraw import message, queued_id
from wait import wait_until

CONF = ("mynetworks = 192.0.2.0/24", "local_domains = example.org",
        "local_recipients = alice")
SEV_RANK = {"error": 0, "warning": 1, "information": 2}


@pytest.fixture(scope="module")
def logdir(dialmail_bin, tmp_path_factory):
    """A state dir whose event log holds events of every severity."""
    tmp = tmp_path_factory.mktemp("events")
    port = free_port()
    write_config(tmp / "d.conf", port, CONF)
    d = Daemon(dialmail_bin, tmp / "spool", tmp / "d.conf", port, tmp)
    try:
        d.start()
        r = d.send("s@client.test", ["alice@example.org"], message("one"))
        assert r.code == 250, r
        with d.smtp() as c:
            assert c.cmd("EHLO client.test").code == 250
            assert c.cmd("MAIL FROM:<s@client.test>").code == 250
            assert c.cmd("RCPT TO:<remote@other.example>").code == 554
            assert c.cmd("RCPT TO:<bob@example.org>").code == 550
            assert c.cmd("RCPT TO:<alice@example.org>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(b"Subject: x\r\n\r\nbare\nLF\r\n.\r\n")
            assert c.reply().code >= 500
        assert d.wait_event(4193) and d.wait_event(4192) and d.wait_event(4194)
        assert wait_until(lambda: d.maildir_files("alice"), 10)
        d.stop()
        # Relay from inside mynetworks, then damage that queue file: recovery
        # moves it aside with an error event.
        write_config(d.config, port, CONF[1:])
        d.start()
        r = d.send("s@client.test", ["remote@other.example"], message("remote"))
        assert r.code == 250, r
        d.stop()
        qfiles = files_under(d.dir / "queue")
        assert len(qfiles) == 1, qfiles
        qfiles[0].write_bytes(qfiles[0].read_bytes()[:100])
        d.start()
        assert d.wait_event(3013)
        r = d.send("s@client.test", ["alice@example.org"], message("two"))
        assert r.code == 250
        assert wait_until(lambda: len(d.maildir_files("alice")) == 2, 10)
        d.stop()
        yield d
    finally:
        d.finalize()


def events_cli(d, *args):
    r = subprocess.run([d.bin, "events", "--dir", str(d.dir), *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def key(e):
    return (e["time"], e["id"], e["text"])


def cli_events(d, *args):
    out = parse_json_lines(events_cli(d, "--json", *args).stdout)
    assert isinstance(out, list)
    return [key(e) for e in out]


def test_json_lists_every_event(logdir):
    all_events = logdir.events()
    assert {1000, 1001, 2002, 4192, 4193, 4194} <= {e["id"] for e in all_events}
    for e in all_events:
        assert set(e) >= {"time", "id", "severity", "category", "text"}, e
        assert e["severity"] in SEV_RANK
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", e["time"]), e
    assert cli_events(logdir) == [key(e) for e in all_events]


def test_filter_by_id(logdir):
    want = [key(e) for e in logdir.events() if e["id"] == 2002]
    assert len(want) == 3  # "one", "remote", "two"
    assert cli_events(logdir, "--id", "2002") == want


@pytest.mark.parametrize("sev", ["error", "warning", "information"])
def test_filter_by_severity_and_worse(logdir, sev):
    want = [key(e) for e in logdir.events() if SEV_RANK[e["severity"]] <= SEV_RANK[sev]]
    got = cli_events(logdir, "--severity", sev)
    assert got == want
    if sev == "warning":
        assert len(got) >= 3


def test_severity_error_lists_only_errors(logdir):
    got = parse_json_lines(events_cli(logdir, "--json", "--severity", "error").stdout)
    assert got and all(e["severity"] == "error" for e in got), got
    assert len(got) == len([e for e in logdir.events() if e["severity"] == "error"])


@pytest.mark.parametrize("cat,name", [("smtp", "SMTP Interface Events"),
                                      ("security", "Security"),
                                      ("init", "Initialization/Termination")])
def test_filter_by_category(logdir, cat, name):
    want = [key(e) for e in logdir.events() if e["category"] == name]
    assert want
    assert cli_events(logdir, "--category", cat) == want
    assert cli_events(logdir, "--category", name) == want


def test_combined_filters(logdir):
    want = [key(e) for e in logdir.events()
            if e["category"] == "Security" and e["id"] == 4193]
    assert want
    assert cli_events(logdir, "--category", "security", "--id", "4193",
                      "--severity", "warning") == want


def test_since(logdir, tmp_path):
    # A copy of the log with one event from long ago in front.
    copy = tmp_path / "copy"
    (copy / "log").mkdir(parents=True)
    events = logdir.events()
    old = dict(events[0])
    old["time"] = re.sub(r"^\d{4}", "2001", old["time"])
    old["text"] = "an event from 2001"
    lines = (logdir.dir / "log" / "events.jsonl").read_text()
    (copy / "log" / "events.jsonl").write_text(json.dumps(old) + "\n" + lines)
    r = subprocess.run([logdir.bin, "events", "--dir", str(copy), "--json"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert len(parse_json_lines(r.stdout)) == len(events) + 1
    for since in ("1h", "30m", "1d"):
        r = subprocess.run([logdir.bin, "events", "--dir", str(copy), "--json", "--since", since],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        got = parse_json_lines(r.stdout)
        assert [key(e) for e in got] == [key(e) for e in events], since
    r = subprocess.run([logdir.bin, "events", "--dir", str(copy), "--json", "--since",
                        "2000-06-01T00:00:00Z"], capture_output=True, text=True, timeout=30)
    assert len(parse_json_lines(r.stdout)) == len(events) + 1


def test_table_output_has_each_event(logdir):
    out = events_cli(logdir, "--id", "2002").stdout
    rows = [ln for ln in out.splitlines() if re.search(r"\b2002\b", ln)]
    want = [e for e in logdir.events() if e["id"] == 2002]
    assert len(rows) == len(want), out
    for row, e in zip(rows, want):
        assert e["text"] in row


@pytest.mark.parametrize("args", [["--severity", "loud"], ["--category", "nonsense"],
                                  ["--since", "yesterday-ish"], ["--id", "abc"]])
def test_bad_filter_is_a_usage_error(logdir, args):
    r = subprocess.run([logdir.bin, "events", "--dir", str(logdir.dir), *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 64, (args, r.returncode, r.stdout)
    assert r.stderr


def test_damaged_queue_file_is_moved_aside_with_error_event(daemon):
    d = daemon(*CONF[1:])
    r = d.send("s@client.test", ["x@other.example"], message("victim", body="victim body"))
    assert r.code == 250
    qid = queued_id(r)
    d.stop()
    qfiles = files_under(d.dir / "queue")
    assert len(qfiles) == 1
    data = qfiles[0].read_bytes()
    qfiles[0].write_bytes(data[: len(data) // 2])  # torn: no end marker
    d.start()
    assert qid not in d.queue_ids()
    moved = files_under(d.dir / "corrupt")
    assert len(moved) >= 1 and any(f.read_bytes() == data[: len(data) // 2] for f in moved)
    ev = d.wait_event(3013)
    assert ev and ev[0]["severity"] == "error"
    got = parse_json_lines(subprocess.run(
        [d.bin, "events", "--dir", str(d.dir), "--json", "--severity", "error"],
        capture_output=True, text=True, timeout=30).stdout)
    assert [e["id"] for e in got] == [3013]
