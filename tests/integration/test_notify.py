# systemd's Type=notify protocol (issue 10 item 2), against a fake service
# manager: a unix datagram socket named by NOTIFY_SOCKET, as systemd gives
# its services. The daemon says READY=1 once it accepts mail, with a STATUS=
# line that carries the link state and the queue size; RELOADING=1 (with
# MONOTONIC_USEC) then READY=1 on SIGHUP; STOPPING=1 on SIGTERM. Every
# datagram comes from the daemon's own PID (NotifyAccess=main), also after
# the privilege drop.
import os
import shutil
import socket
import struct
import tempfile
from pathlib import Path

import pytest

from daemon import Daemon, write_config
from ports import free_port


class FakeManager:
    """The service manager's end: datagrams and the sender's pid."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)  # as /run/systemd/notify: any uid may send
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.got = []

    def next(self, timeout=10.0):
        """{KEY: value} of the next datagram, with "_pid" the sender."""
        self.sock.settimeout(timeout)
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        msg["_pid"] = pid
        self.got.append(msg)
        return msg

    def until(self, key, timeout=10.0):
        while True:
            m = self.next(timeout)
            if key in m:
                return m

    def close(self):
        self.sock.close()


@pytest.fixture
def notified(dialmail_bin, tmp_path):
    """factory(*config_lines, dir=None) -> (Daemon, FakeManager); the
    socket is in dir's parent (a daemon that became nobody must reach it)."""
    made = []

    def make(*lines, dir=None):
        port = free_port()
        mgr = FakeManager((dir.parent if dir else tmp_path) / "notify.sock")
        cfg = tmp_path / "dialmail.conf"
        write_config(cfg, port, ["local_domains = localhost", *lines, "[routes]", "* = hold"])
        d = Daemon(dialmail_bin, dir or tmp_path / "spool", cfg, port, tmp_path,
                   env=dict(os.environ, NOTIFY_SOCKET=mgr.path))
        made.append((d, mgr))
        d.start()
        return d, mgr

    yield make
    for d, mgr in made:
        d.finalize()
        mgr.close()


def test_ready_reloading_stopping_with_link_and_queue_status(notified):
    d, mgr = notified()
    ready = mgr.until("READY")
    assert ready["READY"] == "1" and ready["_pid"] == d.pid
    assert ready["STATUS"] == "link down; queue 0 messages, 0 for the link; next slot none"
    # One message held in the queue, then a reload: the status says so.
    d.send("a@localhost", ["x@remote.example"], b"Subject: held\r\n\r\nheld\r\n")
    d.wait_event(2002)
    os.kill(d.pid, 1)
    rel = mgr.until("RELOADING")
    assert rel["RELOADING"] == "1" and int(rel["MONOTONIC_USEC"]) > 0
    again = mgr.until("READY")
    assert again["STATUS"].startswith("link down; queue 1 message, 0 for the link")
    assert again["_pid"] == d.pid
    assert d.alive()
    d.stop()
    stop = mgr.until("STOPPING")
    assert stop["STOPPING"] == "1" and stop["_pid"] == d.pid


def test_without_notify_socket_nothing_changes(daemon):
    d = daemon()
    assert "NOTIFY_SOCKET" not in os.environ
    os.kill(d.pid, 1)
    d.wait_event(1008)
    assert d.alive()


def test_notifies_after_the_privilege_drop(notified):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="dialmail-notify-"))
    try:
        base.chmod(0o755)
        d, mgr = notified("user = nobody", dir=base / "spool")
        ready = mgr.until("READY")
        assert ready["_pid"] == d.pid
        assert d.events_with(1030)
        os.kill(d.pid, 1)
        assert mgr.until("RELOADING")["_pid"] == d.pid
        assert mgr.until("READY")["STATUS"].startswith("link down; queue 0 messages")
    finally:
        shutil.rmtree(base, ignore_errors=True)
