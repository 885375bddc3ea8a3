# The status page (issue 14 item 2): GET / of http_listen shows the link,
# the queue and the period's pictures as inline SVG: one timeline mark per
# dial attempt of the ledger, failure bars by cause, the queue's last point
# equal to the queue count; the queue samples survive a restart; a week of
# hourly sessions and a full sample ring stay under 50 KB; nothing is
# fetched from elsewhere. Invariant: every process is stopped by its PID.
import json
import re
import struct
import time
from collections import Counter

import pytest

from dialup import MODEMSIM, dial, ledger
from ports import free_port
from smtpraw import message, send_message
from wait import wait_until
from web import http_get

pytestmark = pytest.mark.skipif(not MODEMSIM.exists(), reason="make build/modemsim first")


def page(port, query=""):
    status, headers, body = http_get(port, "/" + query)
    assert status == 200, body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    return body.decode()


def marks(html):
    return re.findall(r'<rect class="k\d+" data-cause="([^"]+)"', html)


def bars(html):
    return {c: int(n) for c, n in re.findall(r'<g class="bar" data-cause="([^"]+)" '
                                             r'data-count="(\d+)"', html)}


def last_point(html):
    return int(re.search(r'<circle class="last" data-count="(\d+)"', html).group(1))


def polyline_points(html):
    return len(re.search(r'<polyline class="q" points="([^"]*)"', html).group(1).split())


def self_contained(html):
    """No script, and no URL of another place (links to this page's own paths only)."""
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(?!/)', html), re.findall(r'(?:src|href)="[^"]*"', html)
    assert "@import" not in html and "url(" not in html


def test_status_page_draws_the_ledger_and_the_queue(daemon, rig):
    link, gw = rig.modem("modem0", "--script", "BUSY,NO CARRIER")
    hport = free_port()
    d = daemon(*rig.config(rig.entry("isp", link),
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp" % gw],
                           main=["http_listen = 127.0.0.1:%d" % hport,
                                 "queue_sample_interval = 1s", "hostname = gw.test"]))
    send_message(d.port, "a@localhost", ["x@example.org"], message("one"))
    html = page(hport)
    self_contained(html)
    assert "<title>dialmail status: gw.test</title>" in html
    assert '<td id="queue-count">1</td>' in html and "link 1" in html
    assert last_point(html) == 1
    assert marks(html) == [] and "no failed dial attempts" in html

    res = dial(d)
    assert res.returncode == 0, res.stdout + res.stderr
    send_message(d.port, "a@localhost", ["y@example.org"], message("two"))
    send_message(d.port, "a@localhost", ["z@example.org"], message("three"))
    html = page(hport, "?range=1h")
    self_contained(html)
    attempts = [a["cause"] for s in ledger(d) for a in s["attempts"]]
    assert attempts == ["busy", "no-carrier", "connected"]
    assert sorted(marks(html)) == sorted(attempts)
    assert bars(html) == dict(Counter(a for a in attempts if a != "connected"))
    # The failure causes are those of the 4106 events.
    assert Counter(e["cause"] for e in d.events_with(4106)) == Counter(bars(html))
    ups = re.search(r'<g class="up"[^>]*>(.*?)</g>', html).group(1)
    assert len(re.findall(r'<rect ', ups)) == 1 and "B (1) out" in ups
    q = json.loads(d.cli("queue", "--dir", str(d.dir), "--json").stdout)
    n = len(q if isinstance(q, list) else q["messages"])
    assert n == 2 and last_point(html) == n
    assert '<td id="queue-count">2</td>' in html
    assert "<b>1 hour</b>" in html and 'href="/?range=7d"' in html
    assert http_get(hport, "/?range=1y")[0] == 200  # an unknown range draws 24 hours


def test_queue_samples_survive_a_restart(daemon):
    hport = free_port()
    d = daemon("http_listen = 127.0.0.1:%d" % hport, "queue_sample_interval = 1s")
    ring = d.dir / "queue.samples"
    assert wait_until(lambda: ring.exists() and ring.stat().st_size >= 16 + 3 * 16, 10)
    before = polyline_points(page(hport, "?range=1h"))
    assert before >= 3
    d.restart()
    after = polyline_points(page(hport, "?range=1h"))
    assert after >= before
    # The file stays a fixed ring: header and 10080 records at most.
    assert ring.stat().st_size <= 16 + 10080 * 16


def fake_week(dir, now):
    """A week of hourly sessions (one BUSY, then connected) in the ledger
    and a full ring of queue samples, one a minute."""
    (dir / "log").mkdir(parents=True, exist_ok=True)
    (dir / "state").mkdir(parents=True, exist_ok=True)
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))
    lines = []
    for h in range(168):
        t = now - 7 * 86400 + h * 3600 + 60
        att = [{"entry": "isp", "number": "1", "attempt": 1, "of": 3, "cause": "busy",
                "class": "transient", "text": "BUSY", "time": iso(t)},
               {"entry": "isp", "number": "1", "attempt": 2, "of": 3, "cause": "connected",
                "class": "none", "text": "CONNECT 33600", "time": iso(t + 5)}]
        lines.append(json.dumps({"start": iso(t), "slot": None, "reason": "scheduled",
                                 "result": "ok", "attempts": att, "rounds": 1, "entry": "isp",
                                 "dial_seconds": 8.0, "connect_seconds": 120.5,
                                 "bytes_out": 123456, "bytes_in": 65432, "messages_out": 12,
                                 "messages_in": 7, "hangup_reason": "idle", "next_slot": None}))
    (dir / "log" / "sessions.jsonl").write_text("\n".join(lines) + "\n")
    recs = b"".join(struct.pack("<qII", now - 7 * 86400 + 60 * i, i % 97, i % 13)
                    for i in range(10080))
    (dir / "queue.samples").write_bytes(b"DMQS" + struct.pack("<III", 1, 10080, 0)
                                                  + recs)


def test_a_week_stays_under_50_kb(daemon, tmp_path):
    hport = free_port()
    spool = tmp_path / "week"
    fake_week(spool, int(time.time()))
    daemon("http_listen = 127.0.0.1:%d" % hport, "queue_sample_interval = 1h", dir=spool)
    html = page(hport, "?range=7d")
    self_contained(html)
    assert len(marks(html)) == 2 * 168
    assert bars(html) == {"busy": 168}
    assert "168 sessions ok, 0 missed; 336 dial attempts" in html
    assert len(html.encode()) <= 50 * 1024, len(html.encode())
    print("status page, 7 days, 168 sessions, 10080 samples: %d bytes" % len(html.encode()))


def test_report_is_one_self_contained_file_for_the_period(run_cli, tmp_path):
    """dialmail report from the state directory alone (no daemon): the
    month holds the week, --since 2d only its last two days."""
    spool = tmp_path / "week"
    now = int(time.time())
    fake_week(spool, now)
    out = tmp_path / "report.html"
    r = run_cli("report", "--dir", str(spool), "--since", "30d", "--output", str(out))
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    self_contained(html)
    assert "<title>dialmail report: " in html and "http-equiv" not in html
    assert len(marks(html)) == 2 * 168 and bars(html) == {"busy": 168}
    assert "168 sessions ok, 0 missed" in html and "%d bytes out" % (168 * 123456) in html
    assert polyline_points(html) > 400 and last_point(html) == 0
    r = run_cli("report", "--dir", str(spool), "--since", "2d")
    assert r.returncode == 0, r.stderr
    recent = r.stdout
    n = len(re.findall(r'<g class="up"[^>]*>(.*?)</g>', recent)[0].split("<rect ")) - 1
    assert 47 <= n <= 49 and len(marks(recent)) == 2 * n
    r = run_cli("report", "--dir", str(spool), "--since", "yesterday")
    assert r.returncode == 64 and "--since yesterday" in r.stderr
