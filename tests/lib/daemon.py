"""One launcher of the dialmail daemon, for the integration tests (the
`daemon` fixture of tests/integration/conftest.py) and the benchmarks
(bench/): `dialmail daemon --dir DIR --config CFG` on a loopback port,
started in a session of its own, ready once its 220 banner arrives, stopped by
its PID; plus what a user would look at (events, tracking log, queue, Maildir).
"""
import json
import re
import signal
import subprocess
import time
from pathlib import Path

from smtpraw import SmtpRaw, send_message
from wait import wait_until


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
    """One dialmail daemon process started by a test or a benchmark.
    wrap: a function that returns the daemon's argv wrapped in another
    command that execs it in place (the benchmarks' private resolver);
    env: the daemon's environment (default: ours)."""

    def __init__(self, binary, dir, config_path, port, logdir, wrap=None, env=None):
        self.bin = str(binary)
        self.dir = Path(dir)
        self.config = Path(config_path)
        self.port = port
        self.logdir = Path(logdir)
        self.proc = None
        self.expect_running = False
        self.starts = 0
        self.log = None
        self.wrap = wrap
        self.env = env

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10.0):
        self.starts += 1
        self.log = self.logdir / ("daemon-%d-%d.log" % (self.port, self.starts))
        argv = [self.bin, "daemon", "--dir", str(self.dir), "--config", str(self.config)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.wrap(argv) if self.wrap else argv,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=self.env)
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


def write_config(path, port, lines):
    """Config file: our listen/syslog/run_as_root lines unless the test sets
    them, then the test's own lines (which may open [sections]). The tests
    run as root on a machine without a dialmail user: run_as_root = yes
    keeps the daemon as it is (test_privileges.py tests the drop)."""
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
    if "run_as_root" not in given and "user" not in given:
        base.append("run_as_root = yes")
    Path(path).write_text("\n".join(base + lines) + "\n")
