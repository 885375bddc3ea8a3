"""The `make run` demo (scripts/demo) started by a test: a branch and a hub
dialmail with two modemsims, in a temporary directory on free ports, stopped
by the script's PID (the script stops the four processes by theirs)."""
import os
import signal
import subprocess
from pathlib import Path

from ports import free_port

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo"


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path("/proc/%d/stat" % pid)
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


class Demo:
    def __init__(self, tmp, *args):
        self.dir = tmp / "run"
        self.smtp = free_port()
        self.hub = free_port()
        self.http = free_port()
        self.out = open(tmp / "demo.out", "w+")
        env = dict(os.environ, BUILD=str(Path(os.environ.get(
            "DIALMAIL_BIN", REPO / "build" / "dialmail")).parent))
        self.proc = subprocess.Popen(
            [str(DEMO), "--dir", str(self.dir), "--smtp-port", str(self.smtp),
             "--hub-port", str(self.hub), "--odmr-port", str(free_port()),
             "--line-port", str(free_port()), "--http-port", str(self.http), *args],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT, cwd=str(tmp),
            env=env, start_new_session=True)

    def output(self):
        self.out.seek(0)
        return self.out.read()

    def pids(self):
        f = self.dir / "demo" / "pids"
        return {l.split()[0]: int(l.split()[1]) for l in f.read_text().splitlines()} \
            if f.exists() else {}

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                raise AssertionError("the demo did not stop on %s" % sig)
        return self.proc.returncode
