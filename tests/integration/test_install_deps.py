# scripts/install-deps on a machine that already runs its own mail server
# (issue 10, item 7): it may stop only the services its own install added.
# The package tools are stand-ins on PATH that record what they are asked.
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-deps"


def fake_tools(tmp_path, installed):
    """A bin directory whose dpkg-query knows the packages in installed,
    whose apt-get, systemctl and debconf-set-selections log their
    arguments to calls.log, and whose id says root."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    (tmp_path / "installed").write_text("\n".join(installed) + "\n")
    tools = {
        "dpkg-query": 'for pkg; do :; done; grep -qx "$pkg" %s && printf "install ok installed"; exit 0'
                      % (tmp_path / "installed"),
        "apt-get": 'echo "apt-get $*" >> %s' % log,
        "systemctl": 'echo "systemctl $*" >> %s' % log,
        "debconf-set-selections": 'cat > /dev/null; echo debconf >> %s' % log,
        "id": 'echo 0',
    }
    for name, body in tools.items():
        p = bindir / name
        p.write_text("#!/bin/sh\n%s\n" % body)
        p.chmod(0o755)
    return bindir, log


def run(bindir):
    env = dict(os.environ, PATH="%s:/usr/bin:/bin" % bindir)
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=30)


def all_packages():
    text = SCRIPT.read_text()
    start = text.index('PKGS="') + len('PKGS="')
    return text[start:text.index('"', start)].replace("\\\n", " ").split()


def test_the_machines_own_postfix_is_left_alone(tmp_path):
    # postfix is the machine's; dovecot-core is not there yet
    have = [p for p in all_packages() if p not in ("dovecot-core", "swaks")]
    bindir, log = fake_tools(tmp_path, have)
    r = run(bindir)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert any(c.startswith("apt-get install") and "dovecot-core" in c and "postfix" not in c
               for c in calls), calls
    assert "systemctl disable --now dovecot" in calls
    assert not any("postfix" in c for c in calls if c.startswith("systemctl")), calls


def test_nothing_missing_touches_nothing(tmp_path):
    bindir, log = fake_tools(tmp_path, all_packages())
    r = run(bindir)
    assert r.returncode == 0, r.stderr
    assert not log.exists() or log.read_text() == ""


def test_a_fresh_machine_stops_what_it_installed(tmp_path):
    bindir, log = fake_tools(tmp_path, ["build-essential"])
    r = run(bindir)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert "systemctl disable --now postfix" in calls
    assert "systemctl disable --now dovecot" in calls
