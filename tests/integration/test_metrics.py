# The HTTP listener's /metrics (issue 14 item 1): a daemon with a dial-up
# rig runs a session with a BUSY and takes mail; its /metrics passes
# `promtool check metrics` and counts what the ledger, the tracking log and
# `dialmail queue` say. The example alerting rules pass `promtool check
# rules` and fire in `promtool test rules`. Invariant: every process a test
# starts is stopped by its PID.
import re
from pathlib import Path

import pytest

from dialup import MODEMSIM, dial, ledger
from ports import free_port
from smtpraw import message, send_message
from web import http_get, promtool, samples, unix_get, value

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "etc" / "prometheus" / "dialmail-rules.yml"

pytestmark = pytest.mark.skipif(not MODEMSIM.exists(), reason="make build/modemsim first")


def scrape(port):
    status, headers, body = http_get(port, "/metrics")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return body.decode()


def test_metrics_pass_promtool_and_count_what_happened(daemon, rig):
    link, gw = rig.modem("modem0", "--script", "BUSY")
    hport = free_port()
    d = daemon(*rig.config(rig.entry("isp", link),
                           routes=["example.org = smarthost 127.0.0.1:%d via=isp" % gw],
                           main=["http_listen = 127.0.0.1:%d" % hport]))
    assert d.wait_event(1004, pred=lambda e: e.get("address") == "127.0.0.1:%d" % hport)
    text = scrape(hport)
    r = promtool("check", "metrics", input=text)
    assert r.returncode == 0, r.stdout + r.stderr + text
    # Two messages wait for the link (the route via isp).
    send_message(d.port, "a@localhost", ["x@example.org"], message("one"))
    send_message(d.port, "a@localhost", ["y@example.org"], message("two"))
    s = samples(scrape(hport))
    assert value(s, "dialmail_queue_messages", state="link") == 2
    assert value(s, "dialmail_queue_route_messages", route="isp") == 2
    assert value(s, "dialmail_queue_oldest_message_age_seconds") >= 0
    assert value(s, "dialmail_received_recipients_total") == 2
    assert value(s, "dialmail_link_up") == 0
    assert value(s, "dialmail_last_successful_session_timestamp_seconds") == 0
    assert value(s, "dialmail_disk_free_bytes") > 0
    assert value(s, "dialmail_disk_min_free_bytes") == 10 * 1024 * 1024

    res = dial(d)
    assert res.returncode == 0, res.stdout + res.stderr
    text = scrape(hport)
    r = promtool("check", "metrics", input=text)
    assert r.returncode == 0, r.stdout + r.stderr + text
    s = samples(text)
    led = ledger(d)[0]
    assert value(s, "dialmail_sessions_total", result="ok", reason="dial command") == 1
    assert value(s, "dialmail_dial_attempts_total", **{"class": "transient", "cause": "busy"}) == 1
    assert value(s, "dialmail_dial_attempts_total", **{"class": "none", "cause": "connected"}) == 1
    assert value(s, "dialmail_link_sent_messages_total", link="isp") == led["messages_out"] == 2
    assert value(s, "dialmail_link_sent_bytes_total", link="isp") == led["bytes_out"] > 0
    assert value(s, "dialmail_link_connect_seconds_total", link="isp") == \
        pytest.approx(led["connect_seconds"])
    assert value(s, "dialmail_delivered_recipients_total", where="remote") == 2
    assert value(s, "dialmail_queue_messages", state="link") == 0
    assert value(s, "dialmail_last_successful_session_timestamp_seconds") > 0
    # The queue count is what `dialmail queue` shows.
    q = d.cli("queue", "--dir", str(d.dir), "--json").stdout
    assert sum(value(s, "dialmail_queue_messages", state=st) for st in
               ("new", "deferred", "link", "held")) == len(re.findall(r'"id"', q))


def test_listener_is_read_only_and_loopback_only(daemon, run_cli, tmp_path):
    hport = free_port()
    d = daemon("http_listen = 127.0.0.1:%d" % hport)
    assert d.wait_event(1004, pred=lambda e: e.get("address") == "127.0.0.1:%d" % hport)
    assert http_get(hport, "/metrics", method="POST")[0] == 405
    assert http_get(hport, "/nothing")[0] == 404
    assert http_get(hport, "/metrics", method="HEAD")[0] == 200
    cfg = tmp_path / "open.conf"
    cfg.write_text("http_listen = 0.0.0.0:9465\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "loopback" in r.stdout + r.stderr, r


def test_unix_socket_for_a_reverse_proxy(daemon, run_cli, tmp_path):
    """http_listen = unix:PATH: owner and group only, like the control
    socket; gone when the daemon stops."""
    sock = tmp_path / "http.sock"
    d = daemon("http_listen = unix:%s" % sock)
    assert d.wait_event(1004, pred=lambda e: e.get("address") == "unix:%s" % sock)
    assert sock.is_socket() and sock.stat().st_mode & 0o777 == 0o660
    status, body = unix_get(sock, "/metrics")
    assert status == 200
    r = promtool("check", "metrics", input=body.decode())
    assert r.returncode == 0, r.stdout + r.stderr
    status, body = unix_get(sock, "/")
    assert status == 200 and b"<title>dialmail status: " in body
    d.stop()
    assert not sock.exists()
    cfg = tmp_path / "rel.conf"
    cfg.write_text("http_listen = unix:http.sock\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "unix:/absolute/path" in r.stdout + r.stderr, r


def test_http_port_taken_is_said_and_mail_goes_on(daemon):
    taken = daemon()
    d = daemon("http_listen = 127.0.0.1:%d" % taken.port)
    e = d.wait_event(1003)
    assert "HTTP: cannot listen on 127.0.0.1:%d" % taken.port in e[0]["text"]
    assert d.alive()


def test_alerting_rules_pass_promtool():
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr
    r = promtool("test", "rules", str(REPO / "tests" / "integration" / "dialmail-rules-test.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
