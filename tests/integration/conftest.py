# Shared fixtures for the integration tests: they start the real dialmail
# binary on a free 127.0.0.1 port and talk to it with real clients. Invariant:
# every daemon a test starts is stopped by its PID in the fixture finalizer,
# and every wait is bounded in count and time.
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CRLF = b"\r\n"


# Ports for servers a test starts: a range of this run's own
# (DIALMAIL_TEST_PORTS, set by the Makefile), below the kernel's ephemeral
# range, so neither the other test run going on in parallel nor any
# connection's source port can take one between our check and its use.
_PORTS = tuple(int(x) for x in os.environ.get("DIALMAIL_TEST_PORTS", "20000-32000").split("-"))
_GIVEN = set()
_RND = random.Random()


def free_port():
    """A port of this run's range that is free now and not handed out before."""
    for _ in range(500):
        port = _RND.randint(*_PORTS)
        if port in _GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise AssertionError("no free port in %d-%d" % _PORTS)


def wait_until(pred, timeout=5.0, interval=0.05):
    """Polls pred() until it returns a true value or timeout passes;
    returns the last value."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
    return pred()


class Reply:
    """One SMTP reply: code, the text of each line, and the raw bytes."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class SmtpRaw:
    """A raw-socket SMTP client: sends exact bytes, parses replies."""

    def __init__(self, port, timeout=10.0, banner=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False
        self.banner = self.reply() if banner else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else max(timeout, 0.01))
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return chunk

    def _line(self, timeout=None):
        for _ in range(10000):
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 1], self.buf[i + 1 :]
                return line
            if self.eof or not self._fill(timeout):
                raise EOFError("connection closed; partial %r" % self.buf)
        raise AssertionError("reply line too long")

    def reply(self, timeout=None):
        """Reads one (possibly multi-line) reply."""
        lines, raw = [], b""
        for _ in range(1000):
            line = self._line(timeout)
            raw += line
            assert line.endswith(CRLF), "reply line without CRLF: %r" % line
            m = re.match(rb"^(\d{3})([ -])(.*)\r\n$", line, re.S)
            assert m, "malformed reply line %r" % line
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(int(m.group(1)), lines, raw)
        raise AssertionError("reply with too many lines")

    def cmd(self, line, timeout=None):
        self.send(line.encode() + CRLF if isinstance(line, str) else line + CRLF)
        return self.reply(timeout)

    def replies_until_close(self, timeout=5.0, limit=100):
        """All replies until the server closes (or timeout: AssertionError)."""
        out = []
        deadline = time.monotonic() + timeout
        for _ in range(limit):
            left = deadline - time.monotonic()
            assert left > 0, "server did not close; replies so far %r" % out
            try:
                out.append(self.reply(timeout=left))
            except EOFError:
                return out
            except socket.timeout:
                raise AssertionError("server did not close; replies so far %r" % out)
        return out

    def closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (any
        pending bytes are discarded)."""
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                if not self._fill(left):
                    return True
            except socket.timeout:
                return False
            except OSError:
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_message(port, sender, rcpts, data, helo="client.test"):
    """Sends one message with raw bytes (data without the final dot line,
    already in wire form). Returns the reply to the end of DATA (or the
    first refusal)."""
    with SmtpRaw(port) as c:
        r = c.cmd("EHLO " + helo)
        assert r.code == 250, r
        r = c.cmd("MAIL FROM:<%s>" % sender)
        if r.code != 250:
            return r
        for rcpt in rcpts:
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            if r.code != 250:
                return r
        r = c.cmd("DATA")
        if r.code != 354:
            return r
        if not data.endswith(CRLF):
            data += CRLF
        c.send(data + b".\r\n")
        r = c.reply()
        c.send(b"QUIT\r\n")
        return r


def queued_id(reply):
    """The queue id from a '250 ... queued as ID' reply."""
    m = re.search(r"queued as ([0-9A-Za-z._-]+)", reply.text if isinstance(reply, Reply) else reply)
    assert m, "no 'queued as ID' in %r" % reply
    return m.group(1)


def message(subject="test", body="hello", headers=(), msgid=True):
    """A small wire-form message."""
    lines = ["From: sender@client.test", "To: someone@example.org", "Subject: " + subject]
    if msgid:
        lines.append("Message-ID: <%s.%d@client.test>" % (subject.replace(" ", "-"), time.time_ns()))
    lines += list(headers)
    lines += ["", body]
    return ("\r\n".join(lines) + "\r\n").encode()


def files_under(path):
    """Regular files below path (recursively), as a sorted list of Paths."""
    p = Path(path)
    if not p.exists():
        return []
    return sorted(f for f in p.rglob("*") if f.is_file())


def parse_json_output(text):
    """CLI JSON output: a JSON document (list or object) or JSON lines."""
    text = text.strip()
    if not text:
        return []
    try:
        return json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def parse_json_lines(text):
    """Output that is one JSON object a line (or one JSON array)."""
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def queue_entries(doc):
    """The list of messages in `dialmail queue --json` output."""
    if isinstance(doc, dict):
        for key in ("messages", "queue", "entries"):
            if key in doc and isinstance(doc[key], list):
                return doc[key]
        raise AssertionError("unexpected queue --json shape: %r" % doc)
    return doc


def entry_id(entry):
    for key in ("id", "queue_id", "qid"):
        if key in entry:
            return entry[key]
    raise AssertionError("queue entry without id: %r" % entry)


class Daemon:
    """One dialmail daemon process started by the test."""

    def __init__(self, binary, dir, config_path, port, logdir):
        self.bin = str(binary)
        self.dir = Path(dir)
        self.config = Path(config_path)
        self.port = port
        self.logdir = Path(logdir)
        self.proc = None
        self.expect_running = False
        self.starts = 0
        self.log = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10.0):
        self.starts += 1
        self.log = self.logdir / ("daemon-%d-%d.log" % (self.port, self.starts))
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [self.bin, "daemon", "--dir", str(self.dir), "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.expect_running = True
        self.wait_banner(timeout)
        return self

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def wait_banner(self, timeout=10.0):
        """Connects until a 220 banner arrives (bounded), then QUITs."""
        deadline = time.monotonic() + timeout
        last = None
        for _ in range(int(timeout / 0.05) + 1):
            if self.proc.poll() is not None:
                self.expect_running = False
                raise AssertionError("daemon exited with %s at start:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            try:
                with SmtpRaw(self.port, timeout=2.0) as c:
                    assert c.banner.code == 220, c.banner
                    c.send(b"QUIT\r\n")
                    c.closed(2.0)
                    return
            except (OSError, EOFError) as e:
                last = e
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise AssertionError("no banner on port %d: %r\n%s" % (self.port, last, self.log_text()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        self.expect_running = False
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("daemon ignored SIGTERM for %ss" % timeout)

    def kill9(self):
        self.expect_running = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self, timeout=10.0):
        if self.alive():
            self.stop()
        return self.start(timeout)

    def finalize(self):
        died = None
        if self.expect_running and self.proc is not None and self.proc.poll() is not None:
            died = self.proc.returncode
        if self.alive():
            try:
                self.stop()
            except AssertionError:
                pass
        if died is not None:
            raise AssertionError("daemon died during the test (exit status %s):\n%s"
                                 % (died, self.log_text()))
        self.check_sanitizers()

    def check_sanitizers(self):
        """Fails if any run of this daemon reported a sanitizer error."""
        for log in sorted(self.logdir.glob("daemon-%d-*.log" % self.port)):
            text = log.read_text(errors="replace")
            if re.search(r"ERROR: \w+Sanitizer|runtime error:", text):
                raise AssertionError("sanitizer report in %s:\n%s" % (log.name, text[-6000:]))

    # --- what a user would look at -------------------------------------
    def events(self):
        """Parsed DIR/log/events.jsonl (complete lines only)."""
        path = self.dir / "log" / "events.jsonl"
        if not path.exists():
            return []
        out = []
        data = path.read_bytes()
        for line in data.split(b"\n")[:-1]:
            if line.strip():
                out.append(json.loads(line))
        return out

    def events_with(self, ev_id):
        return [e for e in self.events() if e.get("id") == ev_id]

    def wait_event(self, ev_id, timeout=5.0, pred=None):
        """The events with id (matching pred) once there is at least one."""
        def found():
            return [e for e in self.events_with(ev_id) if pred is None or pred(e)]
        return wait_until(found, timeout)

    def tracking(self):
        path = self.dir / "log" / "tracking.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def cli(self, *args, check=True, timeout=30, env=None):
        r = subprocess.run([self.bin, *args], capture_output=True, text=True,
                           timeout=timeout, env=env)
        if check:
            assert r.returncode == 0, "dialmail %s: exit %d\n%s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr)
        return r

    def queue(self):
        """Entries of `dialmail queue --dir DIR --json`."""
        r = self.cli("queue", "--dir", str(self.dir), "--json")
        return queue_entries(parse_json_output(r.stdout))

    def queue_ids(self):
        return [entry_id(e) for e in self.queue()]

    def maildir_files(self, user, sub="new"):
        return files_under(self.dir / "mail" / user / "Maildir" / sub)

    def smtp(self, timeout=10.0):
        return SmtpRaw(self.port, timeout=timeout)

    def send(self, sender, rcpts, data):
        return send_message(self.port, sender, rcpts, data)


@pytest.fixture(scope="session")
def dialmail_bin():
    path = Path(os.environ.get("DIALMAIL_BIN", REPO / "build" / "dialmail"))
    if not os.access(path, os.X_OK):
        pytest.fail("dialmail binary %s not built (run make, or set DIALMAIL_BIN)" % path)
    return path


def write_config(path, port, lines):
    """Config file: our listen/syslog lines unless the test sets them,
    then the test's own lines (which may open [sections])."""
    lines = [ln for ln in ("\n".join(lines)).splitlines()]
    given = set()
    for ln in lines:
        if ln.strip().startswith("["):
            break
        m = re.match(r"\s*([A-Za-z_]\w*)\s*=", ln)
        if m:
            given.add(m.group(1))
    base = []
    if "listen" not in given:
        base.append("listen = 127.0.0.1:%d" % port)
    if "syslog" not in given:
        base.append("syslog = no")
    Path(path).write_text("\n".join(base + lines) + "\n")


@pytest.fixture
def daemon(dialmail_bin, tmp_path):
    """Factory: daemon(*config_lines, dir=None, start=True) -> Daemon."""
    started = []

    def make(*lines, dir=None, start=True, port=None):
        n = len(started)
        port = port or free_port()
        d = Path(dir) if dir else tmp_path / ("spool%d" % n)
        cfg = tmp_path / ("dialmail%d.conf" % n)
        write_config(cfg, port, lines)
        dm = Daemon(dialmail_bin, d, cfg, port, tmp_path)
        started.append(dm)
        if start:
            dm.start()
        return dm

    yield make
    errors = []
    for dm in started:
        try:
            dm.finalize()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def run_cli(dialmail_bin):
    """run_cli(*args) -> CompletedProcess (text) of the dialmail binary."""
    def run(*args, timeout=30, env=None, input=None):
        return subprocess.run([str(dialmail_bin), *args], capture_output=True, text=True,
                              timeout=timeout, env=env, input=input)
    return run


@pytest.fixture
def recorders():
    """Factory of scripted SMTP servers (smtp_recorder.Recorder) on loopback,
    all stopped at the end of the test."""
    from smtp_recorder import Recorder

    started = []

    def make(port=0, **kw):
        rec = Recorder(**kw)
        rec.start(port)
        started.append(rec)
        return rec

    yield make
    for rec in started:
        rec.stop()
