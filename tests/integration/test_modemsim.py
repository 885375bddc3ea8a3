# modemsim, the Hayes modem emulator: what a dialer sees on the pty (echo,
# result codes, scripted and random failures, wedges), the data path (pacing,
# latency, carrier loss, the gateway port) and the transcript. Invariant: every
# modemsim a test starts is stopped by its PID, and every read has a timeout.
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from modem import Modem, ModemSim, NUMERIC_FINAL, VERBOSE_FINAL

REPO = Path(__file__).resolve().parents[2]

TS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "


@pytest.fixture(scope="session")
def modemsim_bin():
    path = Path(os.environ.get("MODEMSIM_BIN", REPO / "build" / "modemsim"))
    if not os.access(path, os.X_OK):
        pytest.fail("modemsim binary %s not built (make build/modemsim, or set MODEMSIM_BIN)"
                    % path)
    return path


@pytest.fixture
def sim(modemsim_bin, tmp_path):
    """Factory: sim(*args) -> a started ModemSim with its link under tmp_path.
    At the end each must still run, exit 0 on SIGTERM and remove its link."""
    started = []

    def make(*args, name=None):
        s = ModemSim(modemsim_bin, tmp_path / (name or "ttyS%d" % len(started)), *args)
        started.append(s)
        return s.start()

    yield make
    for s in started:
        assert s.stopped or s.alive(), "modemsim died:\n%s" % s.output()
        assert s.stop() == 0, s.output()
        assert not re.search(r"Sanitizer|runtime error", s.output()), s.output()
        assert not s.link.exists() and not s.link.is_symlink(), "link left behind"


class TcpServer:
    """A loopback TCP server in a thread: sends `greeting` on accept, then
    echoes every byte back (or only records, echo=False), and closes the
    connection on a line "QUIT"."""

    def __init__(self, greeting=b"", echo=True):
        self.greeting = greeting
        self.echo = echo
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.accepted = 0
        self.closed_by_peer = 0
        self.stop = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, c):
        c.settimeout(0.2)
        with c:
            if self.greeting:
                c.sendall(self.greeting)
            pending = b""
            while not self.stop:
                try:
                    data = c.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.closed_by_peer += 1
                    return
                self.received += data
                if self.echo:
                    c.sendall(data)
                pending += data
                if b"QUIT\r\n" in pending:
                    return
                pending = pending[-8:]

    def close(self):
        self.stop = True
        self.sock.close()
        for t in self.threads:
            t.join(2)


@pytest.fixture
def server():
    made = []

    def make(**kw):
        s = TcpServer(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the line and the command set -------------------------------------------

def test_link_pty_line_and_basic_commands(sim):
    s = sim()
    assert re.match(r"^/dev/pts/\d+$", s.pty), s.pty
    assert os.readlink(s.link) == s.pty
    with s.open() as m:
        assert m.command("AT") == "OK"
        assert m.command("at") == "OK"
        assert m.command("ATZ") == "OK"
        assert m.command("AT&F") == "OK"
        assert m.command("AT E0 V1 X4 Q0 L1 M0 &C1 &D2 S0=0 S7=60") == "OK"
        assert m.command("ATS7?") == "OK" and m.lines == ["060"]
        assert m.command("ATI3") == "OK" and "modemsim" in " ".join(m.lines)
        for n in range(10):
            assert m.command("ATI%d" % n) == "OK"
        assert m.command("ATH") == "OK"
        assert m.command("ATH0") == "OK"
        assert m.command("ATO") == "NO CARRIER"      # no call to go back to
        assert m.command("ATJ") == "ERROR"          # unknown command
        assert m.command("ATE0J") == "ERROR"        # unknown after a good one
        assert m.command("ATE7") == "ERROR"
        assert m.command("ATS7=300") == "ERROR"
        assert m.command("ATDT") == "ERROR"         # nothing to dial
        assert m.command("ATDT555$1") == "ERROR"    # not a dial character
        assert m.command("AT" + "E0" * 200) == "ERROR"  # longer than a line
    assert s.wait_transcript(TS + r"cmd ATJ -> ERROR$")


def test_echo_on_and_off(sim):
    s = sim()
    with s.open() as m:
        m.send("AT\r")
        assert m.read_until(rb"OK\r\n") == b"AT\r\r\nOK\r\n"   # E1: echo, then result
        assert m.command("ATE0") == "OK"
        m.send("AT\r")
        assert m.read_until(rb"OK\r\n") == b"\r\nOK\r\n"       # E0: no echo
        assert m.command("ATE1") == "OK"
        m.send("AT\r")
        assert m.read_until(rb"OK\r\n") == b"AT\r\r\nOK\r\n"


def test_verbose_numeric_and_quiet(sim):
    s = sim("--script", "BUSY,NO DIALTONE,NO ANSWER,NO CARRIER")
    with s.open() as m:
        assert m.command("ATE0V0") == "0"
        m.send("AT\r")
        assert m.read_for(0.3) == b"0\r"
        m.send("ATJ\r")
        assert m.read_for(0.3) == b"4\r"
        assert [m.command("ATD1") for _ in range(4)] == ["7", "6", "8", "3"]
        m.send("ATD1\r")
        assert m.read_for(0.3) == b"1\r"                        # CONNECT, numeric
        m.hangup()
        assert m.command("ATE0 V1") == "OK"                     # DTR drop reset E0 to E1
        assert m.raw == b"ATE0 V1\r\r\nOK\r\n"
        m.send("ATQ1\r")                                        # quiet: not even its OK
        assert m.silent_for(0.3)
        m.send("AT\r")
        assert m.silent_for(0.3)
        m.send("ATQ0\r")
        assert m.result() == "OK"


def test_dial_string_forms_and_x_levels(sim):
    s = sim("--script", "BUSY,NO DIALTONE,BUSY,NO DIALTONE")
    with s.open() as m:
        assert m.command("ATX0") == "OK"
        assert m.command("ATDT 555-1234") == "NO CARRIER"      # X0: BUSY not reported
        assert m.command("ATX1DP5551234") == "NO CARRIER"       # X1: no NO DIALTONE either
        assert m.command("ATX3D 9W,(555) 1234") == "BUSY"
        assert m.command("ATX4 DT *70,5551234#") == "NO DIALTONE"
        assert m.command("ATX0DT5551234") == "CONNECT"          # X0: no speed
    assert s.wait_transcript(r"call 2 dial 5551234 -> NO CARRIER$")
    assert s.wait_transcript(r"call 4 dial \*705551234# -> NO DIALTONE$")
    assert s.wait_transcript(r"call 5 dial 5551234 -> CONNECT$")


def test_scripted_results_in_order_then_connect(sim):
    script = ["BUSY", "NO CARRIER", "NO ANSWER", "NO DIALTONE", "ERROR", "BUSY"]
    s = sim("--script", ",".join(script))
    with s.open() as m:
        got = [m.command("ATDT5551234") for _ in script]
        assert got == script
        assert m.command("ATDT5551234") == "CONNECT 33600"      # script used up
    for i, res in enumerate(script, 1):
        assert s.wait_transcript(TS + r"call %d dial 5551234 -> %s$" % (i, res)), \
            s.transcript_lines()
    assert s.wait_transcript(TS + r"call 7 dial 5551234 -> CONNECT 33600$")


def test_connect_delay_and_dial_abort(sim):
    s = sim("--script", "CONNECT 9600", "--connect-delay", "0.8")
    with s.open() as m:
        t0 = time.monotonic()
        assert m.command("ATD5551234") == "CONNECT 9600"
        assert time.monotonic() - t0 >= 0.75
        m.hangup()
        m.send("ATD5551234\r")
        time.sleep(0.2)
        m.send("\r")                                   # a key aborts the dial
        assert m.result() == "NO CARRIER"
        assert m.command("AT") == "OK"
    assert s.wait_transcript(r"call 2 dial 5551234 -> aborted reason=key")


def run_random(sim, seed, n=24, rate="0.5", extra=()):
    s = sim("--fail-rate", rate, "--seed", str(seed), *extra)
    out = []
    with s.open() as m:
        assert m.command("ATS12=2") == "OK"            # 40 ms guard: quick +++
        for _ in range(n):
            r = m.command("ATD5551234")
            out.append(r)
            if r.startswith("CONNECT"):
                assert m.escape(guard=0.04) == "OK"
                assert m.command("ATH") == "OK"
    s.stop()
    return out


def test_fail_rate_with_seed_is_reproducible(sim):
    a = run_random(sim, 42)
    b = run_random(sim, 42)
    c = run_random(sim, 7)
    assert a == b
    assert a != c
    for seq in (a, c):
        assert set(seq) <= {"CONNECT 33600", "BUSY", "NO CARRIER", "NO ANSWER"}, seq
        fails = sum(1 for r in seq if not r.startswith("CONNECT"))
        assert 4 <= fails <= 20, seq                    # about half of 24
    # --fail-results chooses the pool; rate 1 fails every attempt
    d = run_random(sim, 1, n=8, rate="1", extra=("--fail-results", "NO DIALTONE"))
    assert d == ["NO DIALTONE"] * 8


def test_wedge_after_n_until_dtr_drop_and_atz(sim):
    s = sim("--script", "BUSY,NO ANSWER", "--wedge-after", "2")
    with s.open() as m:
        assert m.command("ATD1") == "BUSY"
        assert m.command("ATD1") == "NO ANSWER"
        m.send("AT\r")
        assert m.silent_for(0.5)                        # no echo, no result
        m.send("ATZ\r")
        assert m.silent_for(0.5)                        # ATZ alone does not help
        m.hangup()                                      # DTR drop...
        m.send("AT\r")
        assert m.silent_for(0.5)                        # ...still needs ATZ
        assert m.command("ATZ", timeout=2) == "OK"
        assert m.command("AT") == "OK"
        assert m.command("ATD1") == "CONNECT 33600"
    assert s.wait_transcript(r"wedge: no answer to anything after 2 dial attempts")
    assert s.wait_transcript(r"cmd AT -> \(wedged, no answer\)")
    assert s.wait_transcript(r"wedge: cleared by ATZ")


def test_script_wedge_silent_garbage_entries(sim):
    s = sim("--script", "WEDGE,SILENT,GARBAGE")
    with s.open() as m:
        m.send("ATD1\r")
        assert m.read_for(0.5) == b"ATD1\r"             # echo only: no result
        m.hangup()
        assert m.command("ATZ") == "OK"
        m.send("ATD2\r")
        assert m.read_for(0.5) == b"ATD2\r"             # silent dial
        m.send("\r")                                    # a key ends it, still silent
        assert m.silent_for(0.3)
        assert m.command("AT") == "OK"
        m.send("ATD3\r")
        noise = m.read_for(0.5)[len(b"ATD3\r"):]
        assert noise and not any(w.encode() in noise for w in VERBOSE_FINAL)
        assert m.command("AT") == "OK"
    assert s.wait_transcript(r"call 1 dial 1 -> WEDGE")
    assert s.wait_transcript(r"call 2 dial 2 -> SILENT")
    assert s.wait_transcript(r"call 3 dial 3 -> GARBAGE")


def test_silent_modem_never_answers(sim):
    s = sim("--silent")
    with s.open() as m:
        for cmd in ("AT\r", "ATZ\r", "ATE1V1\r", "ATD5551234\r"):
            m.send(cmd)
        assert m.silent_for(0.8)
    assert s.wait_transcript(r"cmd ATZ -> \(silent\)")


def test_garbage_modem_answers_noise(sim):
    s = sim("--garbage")
    with s.open() as m:
        m.send("AT\r")
        noise = m.read_for(0.5)
        assert len(noise) >= 8
        assert not any(w.encode() in noise for w in VERBOSE_FINAL)
        assert all(b >= 0x80 or b in b"\r\n" for b in noise), noise
        m.send("ATV0\r")
        assert not any(ch.encode() + b"\r" == m.read_for(0.5) for ch in NUMERIC_FINAL)
    assert s.wait_transcript(r"cmd AT -> GARBAGE")


# --- the data path -------------------------------------------------------------

def test_data_path_to_tcp_server_is_paced_at_bps(sim, server):
    srv = server(greeting=b"220 isp.test ESMTP\r\n")
    s = sim("--connect", "127.0.0.1:%d" % srv.port, "--bps", "33600")
    payload = bytes(range(256)) * 13 + b"x" * 32          # 3360 bytes: 1 s at 33600
    with s.open() as m:
        assert m.command("ATDT5551234") == "CONNECT 33600"
        assert m.read_until(rb"220 isp.test ESMTP\r\n", timeout=3).endswith(b"ESMTP\r\n")
        t0 = time.monotonic()
        m.send(payload)
        back = m.read_exactly(len(payload), timeout=10)
        took = time.monotonic() - t0
        assert back == payload
        assert srv.received == payload
        assert 0.9 <= took < 4.0, took
    assert s.wait_transcript(r"call 1 hangup reason=dtr bytes_tx=3360 bytes_rx=%d"
                             % (3360 + 20))


def test_fast_line_is_fast_and_latency_is_one_way(sim, server):
    srv = server()
    s = sim("--connect", "127.0.0.1:%d" % srv.port, "--bps", "2000000")
    payload = b"y" * 3360
    with s.open() as m:
        assert m.command("ATD1") == "CONNECT 2000000"
        t0 = time.monotonic()
        m.send(payload)
        assert m.read_exactly(len(payload), timeout=5) == payload
        assert time.monotonic() - t0 < 0.6               # the control for the test above
    s.stop()
    s = sim("--connect", "127.0.0.1:%d" % srv.port, "--bps", "2000000", "--latency", "300")
    with s.open() as m:
        assert m.command("ATD1") == "CONNECT 2000000"
        t0 = time.monotonic()
        m.send(b"ping\r\n")
        assert wait_for(lambda: b"ping" in srv.received[-6:], 3)
        one_way = time.monotonic() - t0
        assert m.read_exactly(6, timeout=3) == b"ping\r\n"
        rtt = time.monotonic() - t0
        assert 0.28 <= one_way < 1.0, one_way
        assert 0.58 <= rtt < 1.6, rtt


def test_no_connect_target_echoes(sim):
    s = sim("--bps", "1000000")
    with s.open() as m:
        assert m.command("ATD1") == "CONNECT 1000000"
        m.send(b"hello")
        assert m.read_exactly(5) == b"hello"


def test_drop_after_bytes_gives_no_carrier(sim, server):
    srv = server()
    s = sim("--connect", "127.0.0.1:%d" % srv.port, "--drop-after-bytes", "1000",
            "--bps", "1000000")
    with s.open() as m:
        assert m.command("ATD1") == "CONNECT 1000000"
        m.send(b"z" * 3000)
        m.read_until(rb"\r\nNO CARRIER\r\n", timeout=5)
        assert m.command("AT") == "OK"                   # command mode again
        assert m.command("ATD1") == "CONNECT 1000000"    # the next call connects
    assert s.wait_transcript(r"call 1 carrier lost after 1000 bytes")
    hang = s.wait_transcript(r"call 1 hangup reason=carrier")
    tx, rx = map(int, re.search(r"bytes_tx=(\d+) bytes_rx=(\d+)", hang[0]).groups())
    assert tx + rx == 1000
    assert wait_for(lambda: srv.closed_by_peer >= 1, 3)


def test_script_drop_entry_and_remote_close(sim, server):
    srv = server(greeting=b"220 hi\r\n")
    s = sim("--connect", "127.0.0.1:%d" % srv.port, "--script", "DROP:5,CONNECT",
            "--bps", "1000000")
    with s.open() as m:
        assert m.command("ATD1") == "CONNECT 1000000"
        m.read_until(rb"^220 h\r\nNO CARRIER\r\n", timeout=5)  # 5 of the greeting's 8
        assert m.command("ATD1") == "CONNECT 1000000"
        m.read_until(rb"220 hi\r\n", timeout=3)
        m.send(b"QUIT\r\n")                              # the server closes
        m.read_until(rb"QUIT\r\n\r\nNO CARRIER\r\n", timeout=3)
        assert m.command("AT") == "OK"
    assert s.wait_transcript(r"call 2 hangup reason=remote")


def test_connect_refused_is_no_carrier(sim):
    s = sim("--connect", "127.0.0.1:%d" % free_port())
    with s.open() as m:
        assert m.command("ATD1") == "NO CARRIER"
    assert s.wait_transcript(r"call 1 dial 1 -> NO CARRIER \(connect 127\.0\.0\.1:\d+: "
                             r"Connection refused\)")


def test_escape_guard_time_then_ath(sim, server):
    srv = server()
    s = sim("--connect", "127.0.0.1:%d" % srv.port, "--bps", "1000000")
    with s.open() as m:
        assert m.command("ATD1") == "CONNECT 1000000"
        m.send(b"abc+++")                                # no guard before: data
        assert m.read_exactly(6, timeout=3) == b"abc+++"
        time.sleep(1.1)
        t0 = time.monotonic()
        m.send(b"+++")
        assert m.result(timeout=3) == "OK"
        assert time.monotonic() - t0 >= 0.9              # guard time after, too
        assert b"+++" not in srv.received[6:]            # the escape was not data
        assert m.command("ATO") == "CONNECT 1000000"     # back online, call intact
        m.send(b"more")
        assert m.read_exactly(4, timeout=3) == b"more"
        assert m.escape(guard=1.0) == "OK"
        assert m.command("ATH") == "OK"
        assert m.command("AT") == "OK"
    assert s.wait_transcript(r"call 1 escape \(\+\+\+\)", count=2)
    assert s.wait_transcript(r"call 1 hangup reason=ath bytes_tx=10 bytes_rx=10")
    assert wait_for(lambda: srv.closed_by_peer >= 1, 3)


def test_close_and_reopen_is_hangup(sim, server):
    srv = server()
    s = sim("--connect", "127.0.0.1:%d" % srv.port, "--bps", "1000000")
    with s.open() as m:
        assert m.command("ATE0") == "OK"
        assert m.command("ATD1") == "CONNECT 1000000"
        m.send(b"data")
        assert m.read_exactly(4) == b"data"
        m.hangup()
        assert wait_for(lambda: srv.closed_by_peer >= 1, 3)
        m.send("AT\r")                                   # command mode, profile reset: E1
        assert m.read_until(rb"OK\r\n") == b"AT\r\r\nOK\r\n"
        assert m.command("ATD1") == "CONNECT 1000000"
        m.hangup(pause=0)                                 # reopened at once: still a drop
        assert m.command("ATE0") == "OK"
        assert wait_for(lambda: srv.closed_by_peer >= 2, 3)
    hits = s.wait_transcript(r"call 1 hangup reason=dtr bytes_tx=4 bytes_rx=4")
    assert s.wait_transcript(r"call 2 hangup reason=dtr")
    assert hits and s.wait_transcript(r"line closed \(DTR drop\)")


def test_gateway_port_only_during_a_call(sim, server):
    srv = server(greeting=b"220 smarthost\r\n")
    gw = free_port()
    s = sim("--connect", "127.0.0.1:%d" % srv.port, "--gateway-port", str(gw),
            "--bps", "33600", "--latency", "100")
    assert refused(gw)
    with s.open() as m:
        assert m.command("ATD1") == "CONNECT 33600"
        c = socket.create_connection(("127.0.0.1", gw), timeout=5)
        c.settimeout(5)
        t0 = time.monotonic()
        got = b""
        while not got.endswith(b"\r\n"):
            got += c.recv(100)
        assert got == b"220 smarthost\r\n"
        assert time.monotonic() - t0 >= 0.09              # latency applies
        payload = b"q" * 1680                             # 0.5 s each way at 33600
        t0 = time.monotonic()
        c.sendall(payload)
        back = b""
        while len(back) < len(payload):
            chunk = c.recv(65536)
            assert chunk
            back += chunk
        assert back == payload
        assert time.monotonic() - t0 >= 0.45
        m.hangup()                                        # DTR drop ends the call
        c.settimeout(3)
        try:
            assert c.recv(100) == b""
        except ConnectionResetError:
            pass
        c.close()
        assert wait_for(lambda: refused(gw), 3)
        assert m.command("ATD1") == "CONNECT 33600"       # a new call opens it again
        with socket.create_connection(("127.0.0.1", gw), timeout=5) as c2:
            c2.settimeout(5)
            assert c2.recv(100).startswith(b"220")
    assert s.wait_transcript(r"call 1 gateway connection 0 accepted")
    assert s.wait_transcript(r"call 1 hangup reason=dtr")


def recv_exactly(c, n):
    got = b""
    while len(got) < n:
        chunk = c.recv(65536)
        assert chunk
        got += chunk
    return got


def test_reverse_gateway_carries_the_far_sides_connections_on_the_same_line(sim, server):
    """--reverse-gateway: while a call is up the far side (a provider
    delivering to the site after ETRN) connects to its port and reaches a
    server on the dialer's side; both directions share the line's speed,
    and its bytes count in the call's totals."""
    far = server(greeting=b"220 smarthost\r\n")
    site = server(greeting=b"220 site\r\n")
    gw, rgw = free_port(), free_port()
    s = sim("--connect", "127.0.0.1:%d" % far.port, "--gateway-port", str(gw),
            "--reverse-gateway", "%d:127.0.0.1:%d" % (rgw, site.port),
            "--bps", "33600", "--latency", "100")
    assert refused(rgw)
    with s.open() as m:
        assert m.command("ATD1") == "CONNECT 33600"
        with socket.create_connection(("127.0.0.1", gw), timeout=5) as c, \
                socket.create_connection(("127.0.0.1", rgw), timeout=5) as r:
            c.settimeout(5)
            r.settimeout(5)
            assert recv_exactly(r, 10) == b"220 site\r\n"
            assert recv_exactly(c, 15) == b"220 smarthost\r\n"
            t0 = time.monotonic()
            c.sendall(b"u" * 1680)                        # up, 0.5 s
            r.sendall(b"d" * 1680)                        # down, 0.5 s
            assert recv_exactly(c, 1680) == b"u" * 1680   # far echoes: down again
            assert recv_exactly(r, 1680) == b"d" * 1680   # site echoes: up again
            assert time.monotonic() - t0 >= 0.9           # each direction carried 1 s
            assert site.received == b"d" * 1680
        m.hangup()
    assert wait_for(lambda: refused(rgw), 3)
    assert s.wait_transcript(r"call 1 reverse gateway connection \d accepted")
    hang = s.wait_transcript(r"call 1 hangup reason=dtr")[0]
    tx, rx = map(int, re.search(r"bytes_tx=(\d+) bytes_rx=(\d+)", hang).groups())
    assert tx == 10 + 1680 + 1680 and rx == 15 + 1680 + 1680, hang


def test_link_replaces_stale_symlink_refuses_file_and_sigterm_cleans_up(
        modemsim_bin, tmp_path):
    link = tmp_path / "ttyMODEM"
    os.symlink("/nonexistent/pts/99", link)
    s = ModemSim(modemsim_bin, link).start()
    assert os.readlink(link) == s.pty
    assert s.stop() == 0
    assert not link.is_symlink()
    assert re.search(TS + r"exit signal=15$", s.transcript.read_text(), re.M)
    link.write_text("not a link")
    s = ModemSim(modemsim_bin, link)
    with pytest.raises(AssertionError):
        s.start(timeout=2)
    assert s.proc.returncode == 1 and "not a symlink" in s.output()
    assert link.read_text() == "not a link"


def test_transcript_to_stdout_and_bad_options(modemsim_bin, tmp_path):
    p = subprocess.Popen([str(modemsim_bin), "--script", "BUSY"], stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        pty = p.stdout.readline().decode().strip()
        assert pty.startswith("/dev/pts/")
        assert re.match(TS + r"start pty=" + pty, p.stdout.readline().decode())
        with Modem(pty) as m:
            assert m.command("ATD5551234") == "BUSY"
        p.terminate()
        out = p.communicate(timeout=5)[0].decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert re.search(TS + r"call 1 dial 5551234 -> BUSY$", out, re.M), out
    assert p.returncode == 0
    for bad in (["--script", "BUSY,MAYBE"], ["--fail-rate", "2"], ["--bps", "x"],
                ["--seed", "x1"], ["--latency", "-5"], ["--script", "DROP:x"],
                ["--gateway-port", "2525"], ["--connect", "nocolon"],
                ["--profile", "gprs"], ["--drop-random", "500:100"],
                ["--drop-random", "100"], ["--drop-chance", "1.5"], ["--turnaround", "-1"],
                ["--reverse-gateway", "2600:127.0.0.1:25"]):
        r = subprocess.run([str(modemsim_bin), *bad], capture_output=True, timeout=5,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 2, (bad, r)
        assert r.stdout == b"", bad                      # no pty line for a bad start


def test_incoming_call_rings_until_ata_and_carries_data_both_ways(sim):
    """Two modemsims as a telephone line: the caller's --connect leads to the
    answerer's --answer-port. RING until ATA, then data both ways; the
    answerer's DTR drop is the caller's NO CARRIER."""
    port = free_port()
    b = sim("--answer-port", str(port), "--ring-interval", "200", "--bps", "1000000",
            name="answerer")
    a = sim("--connect", "127.0.0.1:%d" % port, "--bps", "1000000", name="caller")
    with b.open() as hub, a.open() as site:
        assert hub.command("ATE0") == "OK"
        assert hub.command("ATA") == "NO CARRIER"        # nobody calling yet
        assert site.command("ATD5551234") == "CONNECT 1000000"
        hub.read_until(rb"\r\nRING\r\n", timeout=3)
        hub.read_until(rb"\r\nRING\r\n", timeout=3)
        assert hub.command("ATA") == "CONNECT 1000000"
        site.send(b"EHLO branch\r\n")
        assert hub.read_exactly(13, timeout=3) == b"EHLO branch\r\n"
        hub.send(b"250 hub\r\n")
        assert site.read_exactly(9, timeout=3) == b"250 hub\r\n"
        hub.hangup()                                      # the hub hangs up: DTR drop
        site.read_until(rb"\r\nNO CARRIER\r\n", timeout=5)
    assert b.wait_transcript(r"incoming call ringing")
    assert b.wait_transcript(r"call 1 answered after 2 rings -> CONNECT 1000000")
    assert b.wait_transcript(r"call 1 hangup reason=dtr bytes_tx=9 bytes_rx=13")
    assert a.wait_transcript(r"call 1 hangup reason=remote")


def test_incoming_call_auto_answer_no_answer_and_caller_hangup(sim):
    port = free_port()
    b = sim("--answer-port", str(port), "--ring-interval", "100", "--max-rings", "3",
            "--bps", "1000000", name="answerer")
    a = sim("--connect", "127.0.0.1:%d" % port, "--bps", "1000000", name="caller")
    with b.open() as hub, a.open() as site:
        assert hub.command("ATE0") == "OK"
        # nobody answers: three RINGs, then the caller loses the line
        assert site.command("ATD1") == "CONNECT 1000000"
        for _ in range(3):
            hub.read_until(rb"\r\nRING\r\n", timeout=3)
        site.read_until(rb"\r\nNO CARRIER\r\n", timeout=5)
        # the caller hangs up while it rings: the ringing stops
        assert site.command("ATD1") == "CONNECT 1000000"
        hub.read_until(rb"\r\nRING\r\n", timeout=3)
        site.hangup()
        assert b.wait_transcript(r"not answered \(caller hung up\)")
        assert hub.silent_for(0.5)
        # S0=2: the modem answers by itself on the second RING
        assert hub.command("ATS0=2") == "OK"
        assert site.command("ATD1") == "CONNECT 1000000"
        hub.read_until(rb"\r\nRING\r\n", timeout=3)
        hub.read_until(rb"\r\nRING\r\n", timeout=3)
        assert hub.result(timeout=3) == "CONNECT 1000000"
        site.send(b"ping")
        assert hub.read_exactly(4, timeout=3) == b"ping"
    assert b.wait_transcript(r"incoming call not answered \(no answer\) after 3 rings")
    assert b.wait_transcript(r"answered after 2 rings")


# --- link profiles and random carrier drops ---------------------------------

def start_line(s):
    return next(l for l in s.transcript_lines() if " start pty=" in l)


def echo_timing(m, payload, timeout=15):
    """Sends payload to an echo server; returns (first byte back, all back) in s."""
    t0 = time.monotonic()
    m.send(payload)
    first = m.read_exactly(1, timeout=timeout)
    t_first = time.monotonic() - t0
    rest = m.read_exactly(len(payload) - 1, timeout=timeout)
    assert first + rest == payload
    return t_first, time.monotonic() - t0


def profile_echo(sim, srv, connect, payload, *args, timeout=5):
    """Starts modemsim with args, dials (CONNECT must say `connect`), echoes
    payload; returns (start line, setup time, first byte back, all back)."""
    s = sim("--connect", "127.0.0.1:%d" % srv.port, *args)
    with s.open() as m:
        t0 = time.monotonic()
        assert m.command("ATD1", timeout=timeout) == connect
        setup = time.monotonic() - t0
        first, full = echo_timing(m, payload)
    assert s.wait_transcript(r"call 1 hangup reason=dtr bytes_tx=%d bytes_rx=%d"
                             % (len(payload), len(payload)))
    line = start_line(s)
    s.stop()
    return line, setup, first, full


def test_iridium_profile_paces_at_2400_with_a_three_second_round_trip(sim, server):
    """--profile iridium: 240 bytes/s and 1.5 s each way; an explicit option
    (the call setup here, to keep the test short) overrides the profile."""
    line, _, first, full = profile_echo(sim, server(), "CONNECT 2400", b"i" * 240,
                                        "--profile", "iridium", "--connect-delay", "0.2")
    assert "profile=iridium bps=2400 latency=1500 turnaround=0 connect_delay=0.2 " in line
    assert 3.0 <= first < 4.5, first                      # two one-way delays
    assert 4.0 <= full < 6.0, full                        # + 1 s of data, pipelined


def test_bgan_profile_call_setup_and_speed(sim, server):
    line, setup, first, full = profile_echo(sim, server(), "CONNECT 256000", b"b" * 25600,
                                            "--profile", "bgan", timeout=10)
    assert "bps=256000 latency=500 turnaround=0 connect_delay=5 " in line
    assert 4.9 <= setup < 7.0, setup                      # the call setup
    assert 1.0 <= first < 2.0, first                      # 25600 bytes: 1 s of line time
    assert 2.0 <= full < 3.5, full


def test_hf_profile_is_half_duplex_with_turnarounds(sim, server):
    """300 bytes/s, and the line carries one direction at a time: the echo
    waits for the upload to end plus the 1.2 s turnaround. The control with
    --turnaround 0 is full duplex."""
    srv = server()
    hf = ("--profile", "hf", "--connect-delay", "0")
    line, _, first, full = profile_echo(sim, srv, "CONNECT 3000", b"h" * 300, *hf)
    assert "bps=3000 latency=100 turnaround=1200 " in line
    assert 2.25 <= first < 3.5, first                     # upload + turnaround + delay
    assert 3.2 <= full < 5.0, full
    _, _, first, full = profile_echo(sim, srv, "CONNECT 3000", b"h" * 300, *hf,
                                     "--turnaround", "0")
    assert first < 0.6, first
    assert 1.0 <= full < 2.0, full


def test_v34_profile(sim, server):
    line, _, first, full = profile_echo(sim, server(), "CONNECT 33600", b"v" * 3360,
                                        "--profile", "v34", "--connect-delay", "0.1")
    assert "bps=33600 latency=300 turnaround=0 connect_delay=0.1 " in line
    assert 0.6 <= first < 1.2, first
    assert 1.6 <= full < 3.0, full


def random_drops(sim, srv, seed, calls, *extra):
    """Dials `calls` calls sending data until NO CARRIER (or 3000 bytes);
    returns the drop offset of each call (None: no drop) from the transcript,
    after checking that the bytes that crossed are exactly that offset."""
    s = sim("--connect", "127.0.0.1:%d" % srv.port, "--bps", "1000000",
            "--seed", str(seed), *extra)
    with s.open() as m:
        for _ in range(calls):
            assert m.command("ATD1") == "CONNECT 1000000"
            m.send(b"d" * 3000)
            try:
                m.read_until(rb"\r\nNO CARRIER\r\n", timeout=2)
            except AssertionError:
                m.hangup()
            assert m.command("AT") == "OK"
    offsets = []
    for n in range(1, calls + 1):
        hang = s.wait_transcript(r"call %d hangup reason=" % n)[0]
        tx, rx = map(int, re.search(r"bytes_tx=(\d+) bytes_rx=(\d+)", hang).groups())
        will = [l for l in s.transcript_lines() if "call %d carrier will drop after" % n in l]
        if not will:
            assert "reason=dtr" in hang
            offsets.append(None)
            continue
        b = int(re.search(r"after (\d+) bytes", will[0]).group(1))
        assert "reason=carrier" in hang and tx + rx == b, (hang, b)
        offsets.append(b)
    s.stop()
    return offsets


def test_carrier_drops_at_random_offsets_reproducible_by_seed(sim, server):
    srv = server()
    a = random_drops(sim, srv, 7, 6, "--drop-random", "100:4000")
    assert all(o is not None and 100 <= o <= 4000 for o in a), a
    assert len(set(a)) >= 5, a                             # offsets differ call to call
    assert random_drops(sim, srv, 7, 6, "--drop-random", "100:4000") == a
    assert random_drops(sim, srv, 8, 6, "--drop-random", "100:4000") != a
    half = random_drops(sim, srv, 9, 8, "--drop-random", "100:4000", "--drop-chance", "0.5")
    assert None in half and any(o is not None for o in half), half
