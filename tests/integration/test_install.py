# `make install` and `make uninstall` (README.md, "Installing") into a
# DESTDIR under tmp_path. make is given BUILD = the directory of the binary
# the suite tests (DIALMAIL_BIN: build/ or build-asan/), so it copies what is
# built there and compiles nothing.
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFIX = "/usr/local"


def build_dir():
    return Path(os.environ.get("DIALMAIL_BIN", REPO / "build" / "dialmail")).resolve().parent


def make(target, destdir):
    r = subprocess.run(["make", "-C", str(REPO), "--no-print-directory", target,
                        "DESTDIR=%s" % destdir, "PREFIX=%s" % PREFIX, "BUILD=%s" % build_dir()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "make %s failed:\n%s%s" % (target, r.stdout, r.stderr)
    # Nothing compiled, nothing linked: only copies.
    for word in (" -c ", " -o "):
        assert word not in r.stdout, "make %s compiled:\n%s" % (target, r.stdout)
    return r


def expected_files():
    """Installed path (below PREFIX) -> mode, for every regular file."""
    files = {"sbin/dialmail": 0o755, "bin/modemsim": 0o755,
             "lib/systemd/system/dialmail.service": 0o644,
             "share/doc/dialmail/README.md": 0o644}
    for m in sorted((REPO / "man").iterdir()):
        section = m.suffix.lstrip(".")
        if section in ("1", "5", "8"):
            files["share/man/man%s/%s" % (section, m.name)] = 0o644
    for d in sorted((REPO / "docs").glob("*.md")):
        files["share/doc/dialmail/" + d.name] = 0o644
    for c in ("dialmail.conf", "demo.conf", "demo-hub.conf", "logrotate.d/dialmail"):
        files["share/doc/dialmail/examples/" + c] = 0o644
    return files


def left_behind(destdir):
    return sorted(str(p.relative_to(destdir)) for p in destdir.rglob("*")
                  if p.is_file() or p.is_symlink())


@pytest.fixture
def installed(tmp_path):
    destdir = tmp_path / "dest"
    make("install", destdir)
    return destdir, destdir / PREFIX.lstrip("/")


def test_install_puts_every_file_with_its_mode(installed):
    destdir, root = installed
    files = expected_files()
    assert len([f for f in files if f.startswith("share/man/")]) == 3
    for rel, mode in files.items():
        p = root / rel
        assert p.is_file() and not p.is_symlink(), "%s not installed" % rel
        assert stat.S_IMODE(p.stat().st_mode) == mode, "%s: mode %o, want %o" % (
            rel, stat.S_IMODE(p.stat().st_mode), mode)
    for name in ("sendmail", "mailq", "newaliases"):
        link = root / "sbin" / name
        assert link.is_symlink(), "%s is not a symlink" % name
        assert os.readlink(link) == "dialmail"
        assert link.resolve() == (root / "sbin" / "dialmail").resolve()
    # Exactly these: nothing else, nothing in /etc.
    want = sorted(["usr/local/" + f for f in files] +
                  ["usr/local/sbin/sendmail", "usr/local/sbin/mailq",
                   "usr/local/sbin/newaliases"])
    assert left_behind(destdir) == want
    assert not (destdir / "etc").exists()


def test_installed_binary_runs_under_its_three_names(installed):
    _, root = installed
    r = subprocess.run([str(root / "sbin" / "dialmail"), "version"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("dialmail ")
    r = subprocess.run([str(root / "sbin" / "sendmail"), "--help"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "usage: sendmail" in r.stdout + r.stderr
    r = subprocess.run([str(root / "sbin" / "mailq"), "--help"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "usage: mailq" in r.stdout + r.stderr


def test_unit_execstart_names_the_installed_binary(installed):
    _, root = installed
    unit = (root / "lib/systemd/system/dialmail.service").read_text()
    execs = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert execs == ["ExecStart=%s/sbin/dialmail daemon --dir /var/spool/dialmail "
                     "--config /etc/dialmail/dialmail.conf" % PREFIX]
    # The rest of the unit is the committed one.
    src = (REPO / "etc/dialmail.service").read_text().splitlines()
    assert [line for line in unit.splitlines() if not line.startswith("ExecStart=")] == \
        [line for line in src if not line.startswith("ExecStart=")]


def test_unit_passes_systemd_analyze_verify(installed, tmp_path):
    """The installed unit as systemd reads it: no warning at all, with
    ExecStart pointing at the staged binary and man pages (Documentation=)
    found under the staged prefix."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("no systemd-analyze")
    _, root = installed
    unit = (root / "lib/systemd/system/dialmail.service").read_text()
    assert "\nType=notify\n" in unit and "\nExecReload=" in unit
    staged = tmp_path / "dialmail.service"
    staged.write_text(unit.replace("ExecStart=%s/sbin/dialmail " % PREFIX,
                                   "ExecStart=%s/sbin/dialmail " % root))
    r = subprocess.run(["systemd-analyze", "verify", str(staged)], capture_output=True,
                       text=True, timeout=60,
                       env=dict(os.environ, MANPATH=str(root / "share/man")))
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def test_man_pages_render(installed):
    _, root = installed
    pages = sorted((root / "share/man").glob("man*/*"))
    assert len(pages) == 3
    if not shutil.which("man"):
        return  # existence is checked above; nothing to render them with
    for p in pages:
        r = subprocess.run(["man", "-P", "cat", "-l", str(p)], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, MANWIDTH="80"))
        assert r.returncode == 0, "%s: %s" % (p, r.stderr)
        name = p.name.rsplit(".", 1)[0]
        assert name.upper() in r.stdout, "%s rendered without its name" % p
        assert r.stderr.strip() == "", "%s: %s" % (p, r.stderr)


def test_uninstall_leaves_no_file(installed):
    destdir, root = installed
    make("uninstall", destdir)
    assert left_behind(destdir) == []
    # dialmail's own doc directories go; shared ones (sbin, man8, ...) may stay.
    assert not (root / "share/doc/dialmail").exists()
    # Twice is harmless.
    make("uninstall", destdir)
