# The status page and the report in a real browser (issue 14 item 4): the
# demo (branch and hub over modemsim, scripted and random dial failures)
# runs a few sessions; headless Chromium loads the status page and the
# report, and their rendered DOM must agree with what a user would check:
# one timeline mark per dial attempt in the ledger, failure bars equal to
# the causes of the 4106 events, the queue line's last point equal to the
# `dialmail queue` count. Chromium takes a screenshot (kept under
# $DIALMAIL_SCREENSHOT_DIR when set: docs/status-page.png comes from it).
# Invariant: the demo is stopped by its PID; Chromium runs with a profile
# under the test's temporary directory.
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from dialup import ledger_at
from wait import wait_until
from web import CHROMIUM, Dom, chromium

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.skipif(not (REPO / "build" / "modemsim").exists(), reason="make all first"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium: scripts/install-deps"),
]


def failure_events(dir):
    path = dir / "log" / "events.jsonl"
    return Counter(json.loads(l)["cause"] for l in path.read_text().splitlines()
                   if l.strip() and json.loads(l)["id"] == 4106)


def queue_count(bin, dir):
    doc = json.loads(os.popen("%s queue --dir %s --json" % (bin, dir)).read() or "[]")
    return len(doc if isinstance(doc, list) else doc["messages"])


def state(bin, dir):
    """What the page must agree with: the ledger, the 4106 causes, the queue."""
    return (len(ledger_at(dir)), failure_events(dir), queue_count(bin, dir))


def quiet_dom(tmp, bin, dir, url, tries=30):
    """The page's rendered DOM taken between two sessions (no session
    running, nothing changed in the ledger, events or queue meanwhile)."""
    for _ in range(tries):
        before = state(bin, dir)
        r = chromium(tmp, "--dump-dom", url)
        assert r.returncode == 0, r.stderr[-2000:]
        if before == state(bin, dir) and "<th>session</th><td>none</td>" in r.stdout:
            return Dom(r.stdout), before
        time.sleep(1)
    raise AssertionError("no quiet moment between sessions to compare")


def marks(dom):
    return Counter(e["data-cause"] for e in dom.find("rect", inside="marks"))


def check_against_ledger(dom, led):
    attempts = Counter(a["cause"] for s in led for a in s["attempts"])
    assert marks(dom) == attempts
    bars = {e["data-cause"]: int(e["data-count"]) for e in dom.find("g", **{"class": "bar"})}
    assert bars == {c: n for c, n in attempts.items() if c != "connected"}
    return bars


def test_status_page_and_report_in_chromium(demo, tmp_path, dialmail_bin, run_cli):
    d = demo("--schedule", "every 25s", "--script", "BUSY,NO CARRIER,CONNECT,NO DIALTONE,CONNECT",
             "--fail-rate", "0.3")
    assert wait_until(lambda: len(ledger_at(d.dir)) >= 3, 180, interval=1), d.output()
    url = "http://127.0.0.1:%d/" % d.http
    dom, (n_sessions, causes, queued) = quiet_dom(tmp_path, dialmail_bin, d.dir, url)
    led = ledger_at(d.dir)
    assert len(led) == n_sessions >= 3
    bars = check_against_ledger(dom, led)
    assert bars == dict(causes) and {"busy", "no-carrier"} <= set(bars), bars
    assert len(dom.find("rect", inside="up")) == sum(1 for s in led if s["entry"])
    last = dom.find("circle", **{"class": "last"})
    assert len(last) == 1 and int(last[0]["data-count"]) == queued
    assert dom.find("td", id="queue-count")

    png = tmp_path / "status.png"
    r = chromium(tmp_path, "--window-size=1000,1000", "--screenshot=%s" % png, url + "?range=1h")
    assert r.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", r.stderr[-2000:]
    assert png.stat().st_size > 20000
    if os.environ.get("DIALMAIL_SCREENSHOT_DIR"):
        shutil.copy(png, Path(os.environ["DIALMAIL_SCREENSHOT_DIR"]) / "status-page.png")

    # The report, from the files alone: its marks and bars are the ledger's
    # as it was when the report was written.
    report = tmp_path / "report.html"
    for _ in range(5):
        led = ledger_at(d.dir)
        r = run_cli("report", "--dir", str(d.dir), "--since", "1d", "--output", str(report))
        assert r.returncode == 0, r.stderr
        if ledger_at(d.dir) == led:
            break
    r = chromium(tmp_path, "--dump-dom", report.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    check_against_ledger(Dom(r.stdout), led)
    r = chromium(tmp_path, "--window-size=1000,1000", "--screenshot=%s" % (tmp_path / "r.png"),
                 report.as_uri())
    assert r.returncode == 0 and (tmp_path / "r.png").stat().st_size > 20000
