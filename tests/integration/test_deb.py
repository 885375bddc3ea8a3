# The Debian package (`make deb`, debian/; README.md, "The Debian package"),
# installed for real with dpkg into a throwaway root: an overlay of this
# machine's / (its libraries, adduser, dpkg database) whose changes land in
# a directory under /tmp, in a mount and network namespace of its own (no
# network: nothing is downloaded, and the daemon's port 2525 is private).
# Checked as an administrator would: the files, owners and modes; the
# dialmail user and group; the unit enabled; /usr/sbin/sendmail and mailq;
# the daemon started as root becoming dialmail and delivering a message
# root sent with sendmail; then remove and purge. lintian must be clean.
#
# The package build takes about 30 s: it happens once per session (a
# session fixture), or never when DIALMAIL_DEB names a built .deb.
import glob
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NEEDED = ("dpkg-buildpackage", "dh", "unshare", "chroot", "lintian")


@pytest.fixture(scope="session")
def deb():
    if os.geteuid() != 0:
        pytest.skip("installing a package into a namespace needs root")
    missing = [t for t in NEEDED if not shutil.which(t)]
    if missing:
        pytest.skip("missing %s (scripts/install-deps)" % ", ".join(missing))
    given = os.environ.get("DIALMAIL_DEB")
    if given:
        yield Path(given)
        return
    build = Path(tempfile.mkdtemp(prefix="dialmail-deb-"))
    try:
        r = subprocess.run(["make", "-C", str(REPO), "--no-print-directory", "deb",
                            "BUILD=%s" % build], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        (pkg,) = [Path(p) for p in glob.glob(str(build / "deb" / "dialmail_*.deb"))]
        yield pkg
    finally:
        shutil.rmtree(build, ignore_errors=True)


# Runs in the namespace: $R the merged root, $T the test's directory. Each
# step's output goes to a file in $T for the test to read afterwards.
SCRIPT = r'''
set -eu
R=$T/root
mount -t overlay overlay -o lowerdir=/,upperdir=$T/upper,workdir=$T/work $R
mount --rbind /dev $R/dev
mount -t proc proc $R/proc
mount -t tmpfs tmpfs $R/run
mount -t tmpfs tmpfs $R/tmp
mkdir -p $R/run/lock
ip link set lo up
cp "$DEB" $R/tmp/dialmail.deb
# As in any chroot: maintainer scripts start and stop no service.
printf '#!/bin/sh\nexit 101\n' >$R/usr/sbin/policy-rc.d
chmod 755 $R/usr/sbin/policy-rc.d
rm -f $R/var/lib/man-db/auto-update  # no man-db index rebuild (slow)
# This root is this machine's, which may have an MTA (Postfix for the
# tests): remove it first, as apt does for a package that conflicts with
# mail-transport-agent (only in the overlay; its dependents stay).
mtas=$(chroot $R dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Provides}\n' |
	awk '/^ii/ && /mail-transport-agent/ {print $2}')
[ -z "$mtas" ] || chroot $R dpkg -r --force-depends $mtas >$T/dpkg-mta.log 2>&1
chroot $R dpkg -i /tmp/dialmail.deb >$T/dpkg-install.log 2>&1
chroot $R /usr/sbin/dialmail daemon --dir /var/spool/dialmail \
	--config /etc/dialmail/dialmail.conf >$T/daemon.log 2>&1 &
pid=$!
i=0
while [ ! -S $R/var/spool/dialmail/control.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
grep -E '^(Uid|Gid|Groups):' /proc/$pid/status >$T/daemon.ids
printf 'Subject: from root\n\nsent with sendmail\n' |
	chroot $R /usr/sbin/sendmail -i alice@localhost >$T/sendmail.log 2>&1
i=0
while [ -z "$(ls $R/var/spool/dialmail/mail/alice/Maildir/new 2>/dev/null)" ] && [ $i -lt 100 ]; do
	sleep 0.1; i=$((i+1)); done
chroot $R /usr/bin/mailq >$T/mailq.log 2>&1 || true
chroot $R setpriv --reuid=65534 --regid=65534 --clear-groups \
	/usr/sbin/dialmail status >$T/status-nobody.log 2>&1 || echo "rc=$?" >>$T/status-nobody.log
chroot $R /usr/sbin/dialmail status >$T/status-root.log 2>&1 || true
# What the install left, seen from inside (owners by name), the daemon
# still running (its control socket).
chroot $R sh -c 'stat -c "%n %a %U %G %F" /var/spool/dialmail /var/spool/dialmail/log \
	/var/spool/dialmail/log/events.jsonl /var/spool/dialmail/control.sock \
	/var/spool/dialmail/mail/alice/Maildir/new/* /usr/sbin/dialmail /usr/sbin/sendmail \
	/usr/bin/mailq /usr/lib/sendmail /etc/dialmail/dialmail.conf \
	/lib/systemd/system/dialmail.service /etc/systemd/system/multi-user.target.wants/dialmail.service' \
	>$T/stat.log 2>&1 || true
kill $pid
wait $pid || echo "rc=$?" >>$T/daemon.log
chroot $R getent passwd dialmail >$T/passwd.log || true
chroot $R getent group dialmail >$T/group.log || true
chroot $R readlink -f /usr/sbin/sendmail /usr/bin/mailq /usr/lib/sendmail >$T/links.log
# Packages of this machine that need an MTA (bsd-mailx) would keep it
# installed: their dependency is not what is tested here.
chroot $R dpkg -r --force-depends dialmail >$T/dpkg-remove.log 2>&1
ls -d $R/var/spool/dialmail >$T/after-remove.log 2>&1 || true
chroot $R dpkg --purge --force-depends dialmail >$T/dpkg-purge.log 2>&1
ls -d $R/var/spool/dialmail $R/etc/dialmail >$T/after-purge.log 2>&1 || true
chroot $R getent passwd dialmail >>$T/after-purge.log || true
'''


@pytest.fixture(scope="session")
def installed(deb):
    t = Path(tempfile.mkdtemp(prefix="dialmail-debroot-"))
    for d in ("upper", "work", "root"):
        (t / d).mkdir()
    try:
        r = subprocess.run(["unshare", "-m", "-n", "--propagation", "private", "sh", "-c",
                            SCRIPT], env=dict(os.environ, T=str(t), DEB=str(deb)),
                           capture_output=True, text=True, timeout=300)
        logs = {p.name: p.read_text(errors="replace") for p in t.glob("*.log")}
        logs["daemon.ids"] = (t / "daemon.ids").read_text() if (t / "daemon.ids").exists() else ""
        assert r.returncode == 0, "%s%s\n%s" % (r.stdout, r.stderr, logs)
        yield logs
    finally:
        subprocess.run(["rm", "-rf", str(t)])


def stats(logs):
    """path -> (mode, user, group, type) from the stat listing."""
    out = {}
    for line in logs["stat.log"].splitlines():
        parts = line.split(" ", 4)
        assert len(parts) == 5, logs["stat.log"]
        out[parts[0]] = (int(parts[1], 8), parts[2], parts[3], parts[4])
    return out


def test_install_creates_user_spool_files_and_enables_the_unit(installed):
    assert "Setting up dialmail" in installed["dpkg-install.log"], installed["dpkg-install.log"]
    user = installed["passwd.log"].split(":")
    assert user[0] == "dialmail" and int(user[2]) < 1000  # a system user
    assert user[5] == "/var/spool/dialmail" and user[6].strip().endswith("nologin")
    assert installed["group.log"].startswith("dialmail:")
    s = stats(installed)
    assert s["/var/spool/dialmail"][:3] == (0o751, "dialmail", "dialmail")
    assert s["/var/spool/dialmail/log"][:3] == (0o750, "dialmail", "dialmail")
    assert s["/var/spool/dialmail/log/events.jsonl"][:3] == (0o640, "dialmail", "dialmail")
    assert s["/usr/sbin/dialmail"] == (0o755, "root", "root", "regular file")
    assert s["/etc/dialmail/dialmail.conf"] == (0o644, "root", "root", "regular file")
    assert s["/lib/systemd/system/dialmail.service"][3] == "regular file"
    # dh_installsystemd enabled it (started only where systemd runs).
    assert s["/etc/systemd/system/multi-user.target.wants/dialmail.service"][3] == \
        "symbolic link"
    for name in ("/usr/sbin/sendmail", "/usr/bin/mailq", "/usr/lib/sendmail"):
        assert s[name][3] == "symbolic link"
    assert installed["links.log"].split() == ["/usr/sbin/dialmail"] * 3


def test_installed_daemon_drops_to_dialmail_and_delivers_roots_mail(installed):
    uid = installed["passwd.log"].split(":")[2]
    ids = dict(line.split(":", 1) for line in installed["daemon.ids"].splitlines())
    assert ids["Uid"].split() == [uid] * 4, installed["daemon.ids"]
    assert installed["sendmail.log"] == ""
    s = stats(installed)
    mail = [p for p in s if "/Maildir/new/" in p]
    assert len(mail) == 1, installed["stat.log"]
    assert s[mail[0]][1] == "dialmail"
    assert s["/var/spool/dialmail/control.sock"][:3] == (0o660, "dialmail", "dialmail")
    assert "permission denied" in installed["status-nobody.log"]
    assert "rc=77" in installed["status-nobody.log"]
    assert "link: " in installed["status-root.log"]
    assert "Mail queue is empty" in installed["mailq.log"] or "empty" in installed["mailq.log"]


def test_remove_keeps_the_spool_purge_removes_it(installed):
    assert "Removing dialmail" in installed["dpkg-remove.log"]
    assert "No such file" not in installed["after-remove.log"]
    after = installed["after-purge.log"]
    assert after.count("No such file") == 2, after
    assert after.strip().endswith("/usr/sbin/nologin") or "dialmail:" in after  # user stays


def test_lintian_is_clean(deb):
    changes = glob.glob(str(deb.parent / "*.changes"))
    target = changes[0] if changes else str(deb)
    r = subprocess.run(["lintian", "--pedantic", "-I", target], capture_output=True, text=True,
                       timeout=300)
    tags = [ln for ln in r.stdout.splitlines() if ln[:2] in ("E:", "W:", "I:", "P:")]
    assert tags == [], r.stdout
