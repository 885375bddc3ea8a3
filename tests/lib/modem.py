"""Talking to a Hayes modem on a tty (modemsim or a real one), for tests.

Modem opens the device raw, sends AT commands and reads result codes; every
read is bounded by a timeout. ModemSim starts build/modemsim with a --link
under a test directory and stops it by its PID. Invariant: no call here
blocks longer than the timeout it was given.

    from modem import Modem, ModemSim
    with ModemSim(binary, tmp_path / "ttyS0", "--script", "BUSY") as sim:
        with Modem(sim.link) as m:
            assert m.command("AT") == "OK"
            assert m.command("ATDT5551234") == "BUSY"
            assert sim.wait_transcript(r"call 1 dial 5551234 -> BUSY")
"""

import datetime
import os
import re
import select
import signal
import subprocess
import termios
import time
import tty
from pathlib import Path

# Final result codes: verbose words and the numeric forms of ATV0.
VERBOSE_FINAL = ("OK", "CONNECT", "NO CARRIER", "ERROR", "NO DIALTONE", "BUSY", "NO ANSWER")
NUMERIC_FINAL = {"0": "OK", "1": "CONNECT", "3": "NO CARRIER", "4": "ERROR",
                 "6": "NO DIALTONE", "7": "BUSY", "8": "NO ANSWER"}


class ModemTimeout(AssertionError):
    """No final result within the timeout; .data holds what did arrive."""

    def __init__(self, msg, data=b""):
        super().__init__("%s; received %r" % (msg, data))
        self.data = data


def is_final(token):
    """True for a token that ends a command: OK, CONNECT 33600, 7, ..."""
    if token in NUMERIC_FINAL:
        return True
    return token in VERBOSE_FINAL or token.startswith("CONNECT ")


class Modem:
    """A dialer's view of a modem: the tty opened raw, no controlling tty."""

    def __init__(self, path, timeout=5.0):
        self.path = str(path)
        self.timeout = timeout
        self.fd = None
        self.buf = b""
        self.lines = []   # non-final text of the last result() (info, echo)
        self.raw = b""    # every byte the last result() consumed
        self.open()

    def open(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[2] |= termios.CLOCAL | termios.CREAD | termios.HUPCL
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        termios.tcflush(self.fd, termios.TCIOFLUSH)
        self.buf = b""

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def hangup(self, pause=0.3):
        """DTR drop as a pty shows it: close the line, wait, reopen."""
        self.close()
        time.sleep(pause)
        self.open()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- bytes -------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        deadline = time.monotonic() + self.timeout
        while data:
            try:
                n = os.write(self.fd, data)
                data = data[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ModemTimeout("write blocked")
                select.select([], [self.fd], [], 0.05)

    def _fill(self, timeout):
        """Reads what arrives within timeout (at most one read); returns it."""
        r, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not r:
            return b""
        try:
            chunk = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return b""
        self.buf += chunk
        return chunk

    def read_for(self, seconds):
        """Every byte that arrives within `seconds` (plus what was buffered)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._fill(left)
        out, self.buf = self.buf, b""
        return out

    def read_exactly(self, n, timeout=None):
        """n bytes of data (a call's data path), or ModemTimeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ModemTimeout("wanted %d bytes" % n, self.buf)
            self._fill(left)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, pattern, timeout=None):
        """Bytes up to and including the first match of regex pattern."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rx = re.compile(pattern)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise ModemTimeout("no %r" % pattern, self.buf)
            self._fill(left)

    # --- results -------------------------------------------------------------
    def result(self, timeout=None):
        """The next final result code: 'OK', 'CONNECT 33600', or '0', '7' after
        ATV0. Text before it (echo, ATI lines) goes to self.lines."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self.lines, self.raw = [], b""
        while True:
            m = re.search(rb"[\r\n]", self.buf)
            if m:
                token = self.buf[:m.start()]
                self.raw += self.buf[:m.end()]
                self.buf = self.buf[m.end():]
                text = token.decode("latin-1").strip()
                if not text:
                    continue
                if is_final(text):
                    self._eat_lf(text, m.group(0), deadline)
                    return text
                self.lines.append(text)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise ModemTimeout("no result code", self.raw + self.buf)
            self._fill(left)

    def _eat_lf(self, text, term, deadline):
        """Consumes the LF of a verbose result's CR LF, so data that follows
        CONNECT starts clean (numeric results end with CR alone)."""
        if term != b"\r" or text in NUMERIC_FINAL:
            return
        if not self.buf:
            self._fill(min(0.2, max(deadline - time.monotonic(), 0)))
        if self.buf.startswith(b"\n"):
            self.raw += b"\n"
            self.buf = self.buf[1:]

    def command(self, cmd, timeout=None):
        """Sends cmd + CR, returns its final result code."""
        self.send(cmd + "\r")
        return self.result(timeout)

    def silent_for(self, seconds):
        """True if nothing at all arrives for `seconds`."""
        return self.read_for(seconds) == b""

    def escape(self, guard=1.0, timeout=None):
        """+++ with the guard time before and after; returns the result."""
        time.sleep(guard + 0.1)
        self.send("+++")
        return self.result(guard + 3.0 if timeout is None else timeout)


class ModemSim:
    """One modemsim process with a --link and a transcript file."""

    def __init__(self, binary, link, *args, transcript=None):
        self.bin = str(binary)
        self.link = Path(link)
        self.args = [str(a) for a in args]
        self.transcript = Path(transcript) if transcript else self.link.with_name(
            self.link.name + ".transcript")
        self.logfile = self.link.with_name(self.link.name + ".out")
        self.proc = None
        self.pty = None
        self.stopped = False

    def start(self, timeout=5.0):
        with open(self.logfile, "wb") as out:
            self.proc = subprocess.Popen(
                [self.bin, "--link", str(self.link), "--transcript", str(self.transcript)]
                + self.args,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            first = self.output().split("\n", 1)
            if len(first) == 2 and self.link.is_symlink():
                self.pty = first[0]
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError("modemsim did not start: %s" % self.output())

    def output(self):
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM by PID (SIGKILL after timeout); returns the exit status."""
        if self.proc is None:
            return None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("modemsim ignored SIGTERM")
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def open(self, timeout=5.0):
        return Modem(self.link, timeout)

    def transcript_lines(self):
        try:
            return self.transcript.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def wait_transcript(self, pattern, timeout=5.0, count=1):
        """The transcript lines matching regex pattern once there are count of
        them (or [] after timeout)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            hits = [ln for ln in self.transcript_lines() if rx.search(ln)]
            if len(hits) >= count:
                return hits
            if time.monotonic() > deadline:
                return []
            time.sleep(0.02)


def _stamp(line):
    """The time of a transcript line ("2026-11-25T12:00:00.100Z ...")."""
    t = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def call_record(transcript, call=None):
    """What the phone company sees of one call in a modemsim transcript:
    dict(dialed, connected, hangup (epoch seconds), tx, rx (bytes), reason).
    call None: the one call that connected (AssertionError if not one)."""
    lines = Path(transcript).read_text(errors="replace").splitlines()
    up = [l for l in lines if re.search(r" call \d+ dial \S+ -> CONNECT", l)]
    if call is None:
        if len(up) != 1:
            raise AssertionError("expected one connected call, transcript has %d" % len(up))
        call = int(re.search(r" call (\d+) ", up[0]).group(1))
    up = [l for l in up if " call %d " % call in l]
    dialing = [l for l in lines if " call %d dialing " % call in l]
    down = [l for l in lines if " call %d hangup " % call in l]
    if not up or not down:
        raise AssertionError("call %d did not connect and hang up" % call)
    m = re.search(r"reason=(\S+) bytes_tx=(\d+) bytes_rx=(\d+)", down[0])
    return {"dialed": _stamp(dialing[0]) if dialing else _stamp(up[0]),
            "connected": _stamp(up[0]), "hangup": _stamp(down[0]),
            "reason": m.group(1), "tx": int(m.group(2)), "rx": int(m.group(3))}


def line_settings(transcript):
    """The line of a modemsim run from its transcript's start line:
    dict(profile, bps, latency_ms, turnaround_ms, connect_delay)."""
    for l in Path(transcript).read_text(errors="replace").splitlines():
        m = re.search(r" start .*profile=(\S+) bps=(\d+) latency=(\d+) turnaround=(\d+) "
                      r"connect_delay=(\S+)", l)
        if m:
            return {"profile": m.group(1), "bps": int(m.group(2)),
                    "latency_ms": int(m.group(3)), "turnaround_ms": int(m.group(4)),
                    "connect_delay": float(m.group(5))}
    raise AssertionError("no start line in %s" % transcript)
