"""A DNS server for the tests: dnsmasq on a loopback port, authoritative for
ZONE and answering only from its command line (--no-resolv --no-hosts)."""
import shutil
import socket
import subprocess
import time

from ports import free_port

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
ZONE = "mxtest"  # every name below is under it; dnsmasq answers NXDOMAIN for the rest


class Dnsmasq:
    """dnsmasq on 127.0.0.1:port, authoritative for ZONE, stopped by PID."""

    def __init__(self, tmp, records):
        self.port = free_port()
        self.log = tmp / "dnsmasq.log"
        self.args = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                     "--no-poll", "--bind-interfaces", "--listen-address=127.0.0.1",
                     "--port=%d" % self.port, "--local=/%s/" % ZONE, "--pid-file=",
                     "--conf-file=/dev/null", "--log-queries", "--log-facility=%s" % self.log,
                     *records]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited: %s" % self.proc.stderr.read())
            if self.answers():
                return self
            time.sleep(0.05)
        raise AssertionError("dnsmasq does not answer on port %d" % self.port)

    def answers(self):
        # a minimal query (id 1, RD, one question: "a.mxtest" A IN)
        q = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + \
            b"\x01a" + bytes([len(ZONE)]) + ZONE.encode() + b"\x00\x00\x01\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(q, ("127.0.0.1", self.port))
                return len(s.recvfrom(512)[0]) > 12
            except OSError:
                return False

    def queries(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
