# Shared fixtures for the integration tests: they start the real dialmail
# binary on a free 127.0.0.1 port and talk to it with real clients. Invariant:
# every daemon a test starts is stopped by its PID in the fixture finalizer,
# and every wait is bounded in count and time.
#
# The helpers the tests share live in tests/lib (one module a subject); this
# file puts that directory on sys.path once, before pytest imports any test
# module, and holds only fixtures.
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "tests" / "lib"
if str(LIB) not in sys.path:
    sys.path.insert(0, str(LIB))
# Their asserts report like the tests' own.
pytest.register_assert_rewrite(*sorted(p.stem for p in LIB.glob("*.py")))

from daemon import Daemon, write_config  # noqa: E402
from demo import Demo, alive  # noqa: E402
from dialup import Rig  # noqa: E402
from dnsmasq import Dnsmasq  # noqa: E402
from pki import make_ca, make_server_cert  # noqa: E402
from ports import free_port  # noqa: E402
from smtp_recorder import Recorder  # noqa: E402
from smtpc import Queue, smtpc_path  # noqa: E402


@pytest.fixture(scope="session")
def dialmail_bin():
    path = Path(os.environ.get("DIALMAIL_BIN", REPO / "build" / "dialmail"))
    if not os.access(path, os.X_OK):
        pytest.fail("dialmail binary %s not built (run make, or set DIALMAIL_BIN)" % path)
    return path


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
def rig(tmp_path):
    """Modems, a smarthost recorder, and config lines for them (dialup.Rig)."""
    r = Rig(tmp_path)
    yield r
    r.stop()


@pytest.fixture
def demo(tmp_path):
    """Factory: demo(*scripts/demo args) -> a started demo.Demo; each is
    stopped at the end, and any process it left is killed by its PID."""
    started = []

    def make(*args):
        d = Demo(tmp_path, *args)
        started.append(d)
        return d

    yield make
    for d in started:
        pids = d.pids()
        if d.proc.poll() is None:
            try:
                d.stop()
            except AssertionError:
                pass
        for pid in pids.values():  # never leave one behind, even on failure
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


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
    started = []

    def make(port=0, **kw):
        rec = Recorder(**kw)
        rec.start(port)
        started.append(rec)
        return rec

    yield make
    for rec in started:
        rec.stop()


@pytest.fixture
def rec():
    """One scripted SMTP server offering PIPELINING and 8BITMIME."""
    r = Recorder(extensions=("PIPELINING", "8BITMIME"))
    r.start()
    yield r
    r.stop()


@pytest.fixture
def dns(tmp_path):
    """Factory: dns(*dnsmasq_records) -> a started Dnsmasq for dnsmasq.ZONE,
    all stopped at the end of the test."""
    started = []

    def make(*records):
        d = Dnsmasq(tmp_path, records).start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def pki(tmp_path):
    """A private CA, the hub's certificate it signs (pki.HUB_NAMES), and
    another CA that did not sign it. (Modules with certificates of another
    kind define a pki fixture of their own.)"""
    ca = make_ca(tmp_path, "good")
    srv = make_server_cert(ca)
    other = make_ca(tmp_path, "other")
    return {"ca": ca["cert"], "cert": srv["cert"], "key": srv["key"], "other_ca": other["cert"]}


@pytest.fixture(scope="session")
def smtpc_bin():
    """build/smtpc next to the dialmail binary under test (built if missing,
    with the sanitizers when the tree is build-asan)."""
    return smtpc_path()


@pytest.fixture
def queue(tmp_path):
    """An empty smtpc.Queue under tmp_path."""
    return Queue(tmp_path)
