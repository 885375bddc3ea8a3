"""A dialmail daemon on a loopback port with its own state directory.

Runs `dialmail daemon --dir DIR --config CFG` in a private mount namespace
(own /etc/hosts, resolv.conf naming 127.0.0.1) when root, so it never asks the
machine's resolver; stopped by its PID; the directory is removed on stop.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "lib"))
from postfix import free_port, private_resolver_argv, wait_for_port  # noqa: E402


class DialmailError(RuntimeError):
    pass


class DialmailInstance:
    def __init__(self, binary, port=None, settings=None, base_dir=None,
                 hostname="dialmail.test"):
        self.binary = os.path.abspath(binary)
        self.port = port or free_port()
        self.hostname = hostname
        self.settings = dict(settings or {})
        self.base_dir = base_dir
        self.root = None
        self.proc = None
        self._log = None
        self.exit_status = None

    @property
    def state_dir(self):
        return os.path.join(self.root, "state")

    @property
    def config_file(self):
        return os.path.join(self.root, "dialmail.conf")

    @property
    def stderr_file(self):
        return os.path.join(self.root, "daemon.stderr")

    def config_settings(self):
        s = {
            "listen": "127.0.0.1:%d" % self.port,
            "hostname": self.hostname,
            "local_domains": "localhost",
            "mynetworks": "127.0.0.0/8",
            "syslog": "no",
        }
        s.update(self.settings)
        return s

    def start(self, timeout=15.0):
        if not os.access(self.binary, os.X_OK):
            raise DialmailError("no dialmail binary at %s (run make)" % self.binary)
        self.root = tempfile.mkdtemp(prefix="dialmail-", dir=self.base_dir)
        try:
            os.makedirs(self.state_dir)
            with open(self.config_file, "w") as f:
                for k, v in self.config_settings().items():
                    f.write("%s = %s\n" % (k, v))
                # Like Postfix's hold queue: remote mail is kept, on purpose.
                f.write("\n[routes]\n* = hold\n")
            argv = [self.binary, "daemon", "--dir", self.state_dir,
                    "--config", self.config_file]
            self._log = open(self.stderr_file, "w")
            self.proc = subprocess.Popen(self._private_resolver(argv),
                                         stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=self._log)
            if not wait_for_port("127.0.0.1", self.port, timeout,
                                 pid_alive=lambda: self.proc.poll() is None):
                raise DialmailError("dialmail did not listen on port %d "
                                    "(exit %s):\n%s" % (self.port,
                                                        self.proc.poll(),
                                                        self.log_tail()))
        except BaseException:
            self.stop()
            raise
        return self

    def _private_resolver(self, argv):
        """argv wrapped so the daemon sees a hosts file and resolv.conf of
        its own; unchanged when not root (unshare -m needs root)."""
        if os.geteuid() != 0 or not shutil.which("unshare"):
            return argv
        return private_resolver_argv(self.root, argv, self.hostname)

    def alive(self):
        """True while the daemon runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self, keep=False):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.exit_status = self.proc.returncode
            self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        if self.root and not keep:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def queue_count(self):
        """Committed messages: files in DIR/queue (temp files live in DIR/tmp)."""
        qdir = os.path.join(self.state_dir, "queue")
        try:
            return sum(1 for e in os.scandir(qdir)
                       if e.is_file() and not e.name.startswith("."))
        except FileNotFoundError:
            return 0

    def cpu_seconds(self):
        """User+system CPU time the daemon has used so far."""
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, TypeError, IndexError, ValueError):
            return None

    def events(self, severities=("error", "warning")):
        """Event log lines with one of the given severities."""
        path = os.path.join(self.state_dir, "log", "events.jsonl")
        out = []
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        out.append({"severity": "error", "text": "bad JSON: " + line})
                        continue
                    if ev.get("severity") in severities:
                        out.append(ev)
        except OSError:
            pass
        return out

    def log_tail(self, lines=20):
        try:
            with open(self.stderr_file, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, TypeError):
            return "(no output)"
