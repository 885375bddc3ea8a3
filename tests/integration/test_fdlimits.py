# Descriptor limits (issue 11): the daemon raises its soft RLIMIT_NOFILE to
# the hard one and keeps max_connections within what the descriptors carry;
# when accept runs out of descriptors anyway, it pauses instead of spinning,
# logs once, and waiting clients get a 421 or are served once others leave.
import os
import select
import socket
import subprocess
import time

from smtpraw import message, queued_id
from wait import wait_until

LOCAL = ("hostname = mx.test.example", "local_domains = example.org",
         "local_recipients = alice")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of pid, from /proc/PID/stat."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def nofile_soft(pid):
    for line in open("/proc/%d/limits" % pid):
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no Max open files in /proc/%d/limits" % pid)


def log_accept_lines(d):
    return sum(1 for ln in d.log.read_text(errors="replace").splitlines() if "accept" in ln)


class Flood:
    """n clients connected at once; first() reads what each was told."""

    def __init__(self, port, n):
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            self.socks.append(s)
        self.got = {}  # socket -> first reply line (bytes)

    def poll(self, wait=0.2):
        """Reads the replies that arrived; returns the sockets told 220."""
        waiting = [s for s in self.socks if s not in self.got]
        if not waiting:
            return []
        ready, _, _ = select.select(waiting, [], [], wait)
        new = []
        for s in ready:
            try:
                data = s.recv(512)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            self.got[s] = data.split(b"\r\n")[0] if data else b"(closed)"
            if data.startswith(b"220"):
                new.append(s)
        return new

    def count(self, prefix):
        return sum(1 for v in self.got.values() if v.startswith(prefix))

    def quit(self, s):
        try:
            s.setblocking(True)
            s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        s.close()
        self.socks.remove(s)
        self.got.pop(s, None)

    def close(self):
        for s in self.socks:
            s.close()


def drain(flood, timeout):
    """Serves the flood to its end: every client told 220 QUITs at once, so
    those still waiting get their turn. Returns the first lines heard."""
    heard = []
    deadline = time.monotonic() + timeout
    while flood.socks and time.monotonic() < deadline:
        for s in flood.poll(0.2):
            heard.append(flood.got[s])
            flood.quit(s)
        for s in [s for s in flood.socks if s in flood.got]:
            heard.append(flood.got[s])
            s.close()
            flood.socks.remove(s)
    return heard


def legitimate_mail_is_served(d):
    r = d.send("bob@client.test", ["alice@example.org"], message("after the flood"))
    assert r.code == 250, r
    assert queued_id(r)
    assert wait_until(lambda: d.maildir_files("alice"), 10), "not delivered after the flood"


def test_start_raises_soft_limit_and_caps_max_connections(daemon):
    """Soft 64, hard 128: the daemon raises to 128 and carries
    (128 - 32 - 2 * 4) / 2 = 44 sessions; max_connections 100 is lowered to
    44 and both numbers are logged; the 45th client on gets 421 4.7.0."""
    d = daemon(*LOCAL, start=False)
    d.wrap = lambda argv: ["prlimit", "--nofile=64:128", "--"] + argv
    d.start()
    assert nofile_soft(d.pid) == 128
    ev = d.wait_event(1006)
    assert ev, d.events()
    assert "Descriptor limit 128 (soft limit was 64): up to 44 SMTP connections" in ev[0]["text"]
    low = d.wait_event(1007)
    assert low and low[0]["limit"] == "128" and low[0]["usable"] == "44", low
    assert low[0]["max_connections"] == "100", low
    assert ev[0]["max_connections"] == "44" and ev[0]["usable"] == "44", ev
    assert "100" in low[0]["text"] and "44" in low[0]["text"], low

    time.sleep(0.3)  # the banner probe's session is gone
    cpu0 = cpu_seconds(d.pid)
    flood = Flood(d.port, 60)
    try:
        wait_until(lambda: flood.poll(0.05) is not None and len(flood.got) == 60, 10, 0.01)
        assert len(flood.got) == 60, flood.got
        assert flood.count(b"220") == 44, flood.got
        assert flood.count(b"421 4.7.0") == 16, flood.got
        time.sleep(2)
        cpu = cpu_seconds(d.pid) - cpu0
        assert cpu < 0.5, "daemon used %.2f s of CPU holding 44 sessions" % cpu
    finally:
        flood.close()
    assert d.events_with(2019) == []
    legitimate_mail_is_served(d)


def test_out_of_descriptors_pauses_accept_without_spinning(daemon):
    """The descriptor limit is lowered under the running daemon (as if
    max_connections had been sized wrong): accept fails with EMFILE. The
    daemon pauses its listeners, logs one event, uses little CPU, tells
    waiting clients 421 4.3.2 one per back-off or serves them once others
    leave, and serves mail after the flood."""
    d = daemon(*LOCAL, "max_connections = 200")
    time.sleep(0.3)
    nfd = len(os.listdir("/proc/%d/fd" % d.pid))
    limit = nfd + 20
    subprocess.run(["prlimit", "--pid", str(d.pid), "--nofile=%d:%d" % (limit, limit)],
                   check=True)
    lines0 = log_accept_lines(d)
    events0 = len(d.events())
    cpu0 = cpu_seconds(d.pid)
    t0 = time.monotonic()
    flood = Flood(d.port, 80)
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            flood.poll(0.2)
        cpu = cpu_seconds(d.pid) - cpu0
        wall = time.monotonic() - t0
        served = flood.count(b"220")
        refused = flood.count(b"421 4.3.2")
        print("fd limit %d: %.2f s CPU in %.1f s; %d served, %d told 421, %d waiting; "
              "%d accept log lines, %d events" % (limit, cpu, wall, served, refused,
                                                   80 - len(flood.got),
                                                   log_accept_lines(d) - lines0,
                                                   len(d.events()) - events0))
        assert cpu < 0.25 * wall, "daemon used %.2f s of CPU in %.1f s" % (cpu, wall)
        assert 5 <= served <= 20, flood.got
        assert refused >= 1, flood.got
        assert log_accept_lines(d) - lines0 <= 3
        assert len(d.events()) - events0 <= 5, d.events()[events0:]
        assert len(d.events_with(2019)) == 1, d.events_with(2019)
        assert d.alive()

        heard = drain(flood, 30)
        assert not flood.socks, "%d clients heard nothing in 30 s" % len(flood.socks)
    finally:
        flood.close()
    served = sum(1 for h in heard if h.startswith(b"220"))
    refused = sum(1 for h in heard if h.startswith(b"421 4.3.2"))
    assert served + refused == 80, heard
    assert served > 20, "nobody waiting was served once others left: %r" % heard
    assert log_accept_lines(d) - lines0 <= 10
    assert len(d.events()) - events0 <= 20, d.events()[events0:]
    assert len(d.events_with(2019)) <= 2
    legitimate_mail_is_served(d)
    ev = d.events_with(2019)[0]
    assert "Too many open files" in ev["text"] and ev["error"] == "Too many open files", ev
