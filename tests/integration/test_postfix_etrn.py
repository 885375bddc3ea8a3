"""A real Postfix as the provider that holds the branch's mail (issue 5's
first test). Postfix (tests/lib/postfix.py: private instance, own hosts and
resolv.conf, never the machine's DNS) relays branch.example to the branch's
SMTP port, but defer_transports keeps that mail deferred until an ETRN
(fast_flush_domains). The dialmail branch dials through modemsim, whose
gateway port is the only way to Postfix: it sends its outbound mail, sends
ETRN branch.example, receives the held mail over an inbound SMTP session
from Postfix, and hangs up only after it arrived. The message in the
branch's Maildir is compared byte for byte with what was sent to Postfix.
"""
import os
import smtplib
import subprocess
import time

import pytest

from dialup import MODEMSIM
from modem import ModemSim
from ports import free_port
from postfix import PostfixInstance
from smtpraw import message, send_message
from wait import wait_until

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix needs root"),
    pytest.mark.skipif(not os.path.exists("/usr/sbin/postfix"), reason="postfix not installed"),
    pytest.mark.skipif(not MODEMSIM.exists(), reason="make build/modemsim first"),
]


@pytest.fixture
def provider(tmp_path):
    branch_port = free_port()
    pf = PostfixInstance(
        relay_domains=["branch.example"], hold=False,
        main={
            "fast_flush_domains": "$relay_domains",
            "defer_transports": "smtp",
            "transport_maps": "inline:{branch.example=smtp:[127.0.0.1]:%d}" % branch_port,
            "smtp_connection_cache_on_demand": "no",
            "queue_run_delay": "300s",
            "minimal_backoff_time": "300s",
        })
    pf.start()
    pf.branch_port = branch_port
    yield pf
    pf.stop()


def held(pf):
    """Messages in Postfix's deferred queue."""
    return pf.queue_count(("deferred",))


def test_branch_session_etrn_receives_held_mail_from_postfix(daemon, provider, tmp_path):
    pf = provider
    # Mail for the branch arrives at the provider while the branch is offline.
    # With Date: and Message-ID: given, Postfix adds only its Received: line.
    inbound = message("for the branch", body="held at the provider\r\nline two",
                      headers=["Date: Wed, 25 Nov 2026 12:00:00 +0000"])
    with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="world.test", timeout=10) as s:
        s.sendmail("someone@world.example", ["user@branch.example"], inbound)
    assert wait_until(lambda: held(pf) == 1, 20), pf.postqueue() + pf.log_tail()

    lock = tmp_path / "lock"
    lock.mkdir()
    gw = free_port()
    sim = ModemSim(MODEMSIM, tmp_path / "modem0", "--gateway-port", str(gw),
                   "--connect", "127.0.0.1:%d" % pf.port)
    sim.start()
    try:
        d = daemon("listen = 127.0.0.1:%d" % pf.branch_port,
                   "lock_dir = %s" % lock, "queue_run_interval = 1s",
                   "hostname = gw.branch.example",
                   "local_domains = branch.example", "local_recipients = user",
                   # Postfix delivers over loopback, which mynetworks (the
                   # LAN) also holds: name the provider's side
                   "provider_networks = 127.0.0.1/32",
                   "[routes]", "* = smarthost 127.0.0.1:%d via=isp" % gw,
                   "[phonebook isp]", "device = %s" % sim.link, "numbers = 5551234",
                   "at_timeout = 1s", "dial_timeout = 5s",
                   "[session]", "retrieve = etrn", "etrn_domains = branch.example",
                   "etrn_grace = 30s", "idle_timeout = 1s", "check_timeout = 5s",
                   port=pf.branch_port)
        # Outbound mail waits for the link.
        out = message("from the branch", body="outbound")
        r = send_message(d.port, "user@branch.example", ["friend@world.example"], out)
        assert r.code == 250, r
        time.sleep(1.5)
        assert len(d.queue_ids()) == 1
        t0 = time.time()
        r = subprocess.run([d.bin, "dial", "--dir", str(d.dir)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        # The outbound message went out through the call to Postfix.
        assert d.queue_ids() == []
        assert "friend@world.example" in pf.postqueue()
        # ETRN was answered by Postfix and logged with its meaning.
        replies = d.events_with(4120)
        assert len(replies) == 1 and replies[0]["code"] == "250", replies
        assert "queuing for the node started" in replies[0]["text"]
        # The held mail arrived before the hang-up.
        files = d.maildir_files("user")
        assert len(files) == 1, (r.stdout, pf.log_tail())
        got = files[0].read_bytes()
        assert got.endswith(inbound.replace(b"\r\n", b"\n")), got
        assert got.startswith(b"Return-Path: <someone@world.example>\nDelivered-To: "
                              b"user@branch.example\nReceived: ")
        assert b"by postfix.test" in got  # Postfix's own Received: line
        done = d.events_with(4123)
        assert done and "inbound SMTP session ended" in done[0]["text"], done
        received = [e for e in d.events_with(2002) if "someone@world.example" in e["text"]]
        ended = d.events_with(4114)
        assert received and ended and received[0]["time"] <= ended[0]["time"]
        assert "hung up: idle" in r.stdout
        # Postfix keeps only the branch's outbound message (its smtp transport
        # is deferred for the whole test); nothing for the branch is left.
        listing = pf.postqueue()
        assert held(pf) == 1 and "friend@world.example" in listing, listing
        assert "someone@world.example" not in listing, listing
        assert time.time() - t0 < 30
    finally:
        sim.stop()
