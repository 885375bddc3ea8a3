# The hub role: hold_domains accepted from anyone and kept queued; ETRN
# (RFC 1985) from an allowed client releases them to the site (here the SMTP
# recorder standing in for the branch), asynchronously; refusals by client,
# domain and form; held mail expires with a DSN like any other. Then the
# branch side (retrieve = command, configuration errors), inbound duplicate
# suppression, and a dialmail branch asking a dialmail hub over modemsim.
# Invariant: every process a test starts is stopped by its PID, every wait
# is bounded.
import socket
import time

import pytest

from dialup import MODEMSIM, Rig, dial, ledger
from dnsmasq import ZONE
from modem import ModemSim
from ports import free_port
from smtp_recorder import Recorder
from smtpraw import SmtpRaw, message, send_message
from wait import wait_until


class SmtpFrom(SmtpRaw):
    """SmtpRaw from a chosen loopback source address (127.0.0.2 is outside
    etrn_clients = 127.0.0.1/32, while still on this machine)."""

    def __init__(self, port, source, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.banner = self.reply()


def hub(daemon, rec_port, *extra):
    # mynetworks excludes loopback: the site's mail is accepted from
    # anyone because the domain is held, not because the client may relay.
    return daemon("hold_domains = branch.example", "mynetworks = 192.0.2.0/24",
                  "etrn_clients = 127.0.0.1/32",
                  "etrn_hosts = branch.example=127.0.0.1:%d" % rec_port,
                  "queue_run_interval = 1s", "local_recipients = alice", *extra)


def test_held_mail_is_released_by_etrn(daemon, rec):
    d = hub(daemon, rec.port)
    bodies = [message("held %d" % i, body="body %d" % i) for i in range(2)]
    for b in bodies:
        r = send_message(d.port, "a@sender.example", ["user@branch.example"], b)
        assert r.code == 250, r
    # Not a relay for anything else.
    r = send_message(d.port, "a@sender.example", ["x@elsewhere.example"], message("no"))
    assert r.code == 554, r
    time.sleep(2.5)  # two queue runs: held mail stays
    assert rec.sessions == [] and len(d.queue_ids()) == 2
    with d.smtp() as c:
        ehlo = c.cmd("EHLO branch.example")
        assert "ETRN" in ehlo.lines, ehlo
        r = c.cmd("ETRN branch.example")
        assert r.code == 250 and "2 messages" in r.text, r
        assert c.cmd("QUIT").code == 221
    assert wait_until(lambda: sum(len(s.messages) for s in rec.sessions) == 2, 10), \
        rec.sessions
    got = sorted(m.data for s in rec.sessions for m in s.messages)
    for b in bodies:
        hits = [g for g in got if g.endswith(b)]
        assert len(hits) == 1, (b, got)
        assert hits[0].startswith(b"Received: ")
    assert all(m.rcpts == ["user@branch.example"] for s in rec.sessions for m in s.messages)
    assert wait_until(lambda: d.queue_ids() == [], 5), d.queue_ids()
    ev = d.wait_event(2030)
    assert ev and ev[0]["domain"] == "branch.example" and ev[0]["client"] == "127.0.0.1", ev
    assert d.wait_event(3030), "no release-done event"
    # Nothing is left: the next ETRN says so.
    with d.smtp() as c:
        c.cmd("EHLO branch.example")
        r = c.cmd("ETRN branch.example")
        assert r.code == 251, r


def test_etrn_refusals_and_forms(daemon, rec):
    d = hub(daemon, rec.port)
    r = send_message(d.port, "a@sender.example", ["user@branch.example"], message("held"))
    assert r.code == 250, r
    with SmtpFrom(d.port, "127.0.0.2") as c:
        c.cmd("EHLO outsider.example")
        r = c.cmd("ETRN branch.example")
        assert r.code == 458, r
    with d.smtp() as c:
        assert c.cmd("ETRN branch.example").code == 503  # before EHLO
        c.cmd("EHLO branch.example")
        assert c.cmd("ETRN #branchqueue").code == 458
        r = c.cmd("ETRN other.example")
        assert r.code == 459 and "other.example" in r.text, r
        assert c.cmd("ETRN").code == 501
        assert c.cmd("ETRN bad/domain").code == 501
        # During a mail transaction ETRN is out of sequence.
        assert c.cmd("MAIL FROM:<a@sender.example>").code == 250
        assert c.cmd("ETRN branch.example").code == 503
        assert c.cmd("RSET").code == 250
    refused = d.events_with(4198)
    assert len(refused) == 3, refused
    assert refused[0]["client"] == "127.0.0.2"
    time.sleep(1.5)
    assert rec.sessions == [] and len(d.queue_ids()) == 1


def test_etrn_at_form_and_client_address(daemon, rec):
    """ETRN @domain covers subdomains; without etrn_hosts the mail goes to
    the client's own address on etrn_default_port."""
    d = daemon("hold_domains = branch.example, sub.branch.example",
               "mynetworks = 192.0.2.0/24", "etrn_clients = 127.0.0.0/8",
               "etrn_default_port = %d" % rec.port, "queue_run_interval = 1s")
    for rcpt in ("a@branch.example", "b@sub.branch.example"):
        assert send_message(d.port, "s@sender.example", [rcpt], message(rcpt)).code == 250
    with d.smtp() as c:
        c.cmd("EHLO branch.example")
        r = c.cmd("ETRN @branch.example")
        assert r.code == 250 and "2 messages" in r.text, r
    assert wait_until(lambda: sum(len(s.messages) for s in rec.sessions) == 2, 10)
    assert sorted(m.rcpts[0] for s in rec.sessions for m in s.messages) == [
        "a@branch.example", "b@sub.branch.example"]


def test_site_refusing_keeps_mail_held(daemon):
    """The site is not listening: the released mail is deferred and held
    again (no loop of retries), and a later ETRN sends it."""
    rec = Recorder(extensions=("PIPELINING",))
    port = rec.start()
    rec.stop()  # a port nothing listens on now
    time.sleep(0.3)
    d = hub(daemon, port)
    assert send_message(d.port, "s@sender.example", ["u@branch.example"],
                        message("later")).code == 250
    with d.smtp() as c:
        c.cmd("EHLO branch.example")
        assert c.cmd("ETRN branch.example").code == 250
    assert d.wait_event(3030, 10)
    deferred = d.wait_event(3002, 5)
    assert deferred, [e["id"] for e in d.events()]
    time.sleep(2.5)
    assert len(d.events_with(3002)) == 1  # held again, not retried
    rec2 = Recorder(extensions=("PIPELINING",))
    rec2.start(port)
    try:
        with d.smtp() as c:
            c.cmd("EHLO branch.example")
            assert c.cmd("ETRN branch.example").code == 250
        assert wait_until(lambda: sum(len(s.messages) for s in rec2.sessions) == 1, 10)
    finally:
        rec2.stop()


def test_held_mail_expires_with_a_dsn(daemon, rec):
    d = hub(daemon, rec.port, "lifetime_urgent = 2s", "lifetime_normal = 2s",
            "lifetime_non_urgent = 2s", "local_domains = hub.example")
    assert send_message(d.port, "alice@hub.example", ["u@branch.example"],
                        message("expires")).code == 250
    bounced = d.wait_event(3003, 10)
    assert bounced and "held for its site" in bounced[0]["text"], bounced
    assert wait_until(lambda: d.maildir_files("alice"), 10), "no DSN for the sender"
    dsn = d.maildir_files("alice")[0].read_bytes()
    assert b"u@branch.example" in dsn and b"failed" in dsn.lower()
    assert rec.sessions == []


# --- the branch side: retrieve = command ------------------------------------------

def branch_rig(tmp_path):
    return Rig(tmp_path)


def test_retrieve_command_runs_during_the_session(daemon, tmp_path):
    rig = branch_rig(tmp_path)
    try:
        link, gw = rig.modem("modem0")
        record = tmp_path / "ran.txt"
        script = tmp_path / "fetch.sh"
        # The script records when it ran, the entry, and the link's state as
        # `dialmail status` shows it at that moment.
        script.write_text("#!/bin/sh\n"
                          "{ date +%%s.%%N; echo \"entry=$DIALMAIL_ENTRY\"; "
                          "\"$1\" status --dir \"$2\"; } > %s\n" % record)
        script.chmod(0o755)
        d = daemon(*rig.config(rig.entry("isp", link),
                               routes=["example.org = smarthost 127.0.0.1:%d via=isp" % gw],
                               session=["retrieve = command"]), start=False)
        with open(d.config, "a") as f:
            f.write("retrieve_command = %s %s %s\n" % (script, d.bin, d.dir))
        d.start()
        r = dial(d)
        assert r.returncode == 0, r.stdout + r.stderr
        text = record.read_text()
        assert "entry=isp" in text and "link: up" in text, text
        ran_at = float(text.split()[0])
        s = ledger(d)[0]
        assert s["result"] == "ok"
        ev = d.events_with(4122)
        assert len(ev) == 1 and ev[0]["status"] == "0", ev
        assert "exited with status 0" in ev[0]["text"]
        assert "inbound retrieval: retrieval command" in r.stdout
        ended = d.events_with(4114)
        assert ended
        connected = d.events_with(4101)[0]["time"]
        to_epoch = lambda t: time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) \
            - time.timezone + float("0." + t[20:23])
        assert to_epoch(connected) - 1 <= ran_at <= to_epoch(ended[0]["time"]) + 1
    finally:
        rig.stop()


def test_retrieve_command_timeout_is_logged(daemon, tmp_path):
    rig = branch_rig(tmp_path)
    try:
        link, gw = rig.modem("modem0")
        d = daemon(*rig.config(rig.entry("isp", link),
                               routes=["example.org = smarthost 127.0.0.1:%d via=isp" % gw],
                               session=["retrieve = command", "retrieve_command = sleep 30",
                                        "retrieve_timeout = 1s"]))
        t0 = time.monotonic()
        r = dial(d)
        assert r.returncode == 0, r.stdout + r.stderr
        assert time.monotonic() - t0 < 15
        ev = d.events_with(4122)
        assert len(ev) == 1 and ev[0]["status"] == "timeout", ev
        assert "killed after retrieve_timeout (1 s)" in ev[0]["text"]
    finally:
        rig.stop()


def test_retrieval_config_errors(daemon, run_cli, tmp_path):
    cfg = tmp_path / "bad.conf"
    cfg.write_text("[session]\nretrieve = turn\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "needs turn_enabled = yes" in r.stdout + r.stderr
    cfg.write_text("[session]\nretrieve = etrn\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "needs etrn_domains" in r.stdout + r.stderr
    cfg.write_text("[session]\nretrieve = command\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "needs retrieve_command" in r.stdout + r.stderr
    cfg.write_text("etrn_hosts = branch.example\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode != 0 and "not domain=host[:port]" in r.stdout + r.stderr


# --- inbound duplicate suppression ------------------------------------------------

def test_duplicate_message_id_is_delivered_once(daemon):
    d = daemon("local_recipients = alice", "queue_run_interval = 1s")
    msg = message("dup", body="the same message twice")
    for _ in range(2):  # as a provider resends after a dropped line
        assert send_message(d.port, "s@sender.example", ["alice@localhost"], msg).code == 250
    ev = d.wait_event(2023, 5)
    assert ev and ev[0]["rcpt"] == "alice@localhost", ev
    assert ev[0]["message_id"].startswith("<dup.")
    assert wait_until(lambda: d.queue_ids() == [], 5)
    assert len(d.maildir_files("alice")) == 1
    # Another Message-ID is another message.
    assert send_message(d.port, "s@sender.example", ["alice@localhost"],
                        message("other")).code == 250
    assert wait_until(lambda: len(d.maildir_files("alice")) == 2, 5)
    # The record survives a restart.
    d.restart()
    assert send_message(d.port, "s@sender.example", ["alice@localhost"], msg).code == 250
    assert wait_until(lambda: len(d.events_with(2023)) == 2, 5)
    assert len(d.maildir_files("alice")) == 2
    assert (d.dir / "dedup.state").exists()


def test_dedup_window_zero_delivers_every_copy(daemon):
    d = daemon("local_recipients = alice", "dedup_window = 0")
    msg = message("dup", body="twice")
    for _ in range(2):
        assert send_message(d.port, "s@sender.example", ["alice@localhost"], msg).code == 250
    assert wait_until(lambda: len(d.maildir_files("alice")) == 2, 5)
    assert d.events_with(2023) == []


# --- both ends: a dialmail branch asks a dialmail hub --------------------------------

@pytest.mark.parametrize("by_name", [False, True], ids=["address", "name"])
def test_dialmail_branch_etrn_against_dialmail_hub(daemon, tmp_path, dns, by_name):
    """The branch dials through modemsim to the hub's SMTP port, sends its
    outbound mail through the hub, sends ETRN, and the hub delivers the held
    mail to the branch's listen port (the ETRN client's address on
    etrn_default_port); the session hangs up after it arrived. By name: the
    route's smarthost is a name only the test's DNS server knows, resolved
    (c-ares, dns_servers) by the link check, delivery and the ETRN client."""
    top, host = [], "127.0.0.1"
    if by_name:
        d = dns("--host-record=isp-gw.%s,127.0.0.1" % ZONE)
        top, host = ["dns_servers = 127.0.0.1:%d" % d.port], "isp-gw.%s" % ZONE
    branch_port = free_port()
    hub_d = daemon("hold_domains = branch.example", "mynetworks = 192.0.2.0/24",
                   "etrn_clients = 127.0.0.1/32", "etrn_default_port = %d" % branch_port,
                   "queue_run_interval = 1s", "local_domains = hub.example",
                   "local_recipients = boss")
    held_msg = message("for the branch", body="held at the hub")
    assert send_message(hub_d.port, "boss@hub.example", ["user@branch.example"],
                        held_msg).code == 250
    lock = tmp_path / "lock"
    lock.mkdir()
    gw = free_port()
    sim = ModemSim(MODEMSIM, tmp_path / "modem0", "--gateway-port", str(gw),
                   "--connect", "127.0.0.1:%d" % hub_d.port)
    sim.start()
    try:
        br = daemon("lock_dir = %s" % lock, "queue_run_interval = 1s",
                    "local_domains = branch.example", "local_recipients = user", *top,
                    "provider_networks = 127.0.0.1/32",  # the hub comes over loopback
                    "[routes]", "hub.example = smarthost %s:%d via=isp" % (host, gw),
                    "[phonebook isp]", "device = %s" % sim.link, "numbers = 5551234",
                    "at_timeout = 1s", "dial_timeout = 5s",
                    "[session]", "retrieve = etrn", "etrn_domains = branch.example",
                    "etrn_grace = 20s", "idle_timeout = 1s", "check_timeout = 5s",
                    port=branch_port)
        assert send_message(br.port, "user@branch.example", ["boss@hub.example"],
                            message("to the hub", body="outbound")).code == 250
        r = dial(br)
        assert r.returncode == 0, r.stdout + r.stderr
        # Both directions, within one session.
        assert len(hub_d.maildir_files("boss")) == 1
        files = br.maildir_files("user")
        assert len(files) == 1, r.stdout
        assert files[0].read_bytes().endswith(held_msg.replace(b"\r\n", b"\n"))
        rep = br.events_with(4120)
        assert rep and rep[0]["code"] == "250", rep
        assert "inbound SMTP session ended" in br.events_with(4123)[0]["text"]
        assert hub_d.events_with(2030)
        assert wait_until(lambda: hub_d.queue_ids() == [], 5)
        if by_name:
            assert "isp-gw.%s" % ZONE in d.queries(), d.queries()
            assert "isp-gw.%s port %d answered" % (ZONE, gw) in br.events_with(4111)[0]["text"]
    finally:
        sim.stop()
