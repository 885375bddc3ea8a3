# The privilege drop (README.md, "Privileges"; issue 10 item 3): started as
# root, the daemon opens its port and control socket, gives its state
# directory to `user` and becomes it (uid, gid and groups as /proc shows
# them, dialout kept); it refuses to stay root unless run_as_root = yes;
# logs are 0640 in a 0750 directory; the control socket is 0660 for the
# admin group, and a program that may not use it is told "permission
# denied", not that the daemon is not running. The tests run as root and
# become `nobody` (65534) or an unnamed uid with setpriv.
import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from smtpraw import send_message
from wait import wait_until

NOBODY = pwd.getpwnam("nobody")
STRANGER = 23456  # a uid in no group of interest, with no passwd entry


@pytest.fixture
def base(dialmail_bin):
    """A directory every user may traverse (pytest's tmp_path is 0700),
    with a copy of the binary the unprivileged CLI runs."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    d = Path(tempfile.mkdtemp(prefix="dialmail-priv-"))
    d.chmod(0o755)
    shutil.copy2(dialmail_bin, d / "dialmail")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ids(pid):
    """(uids, gids, groups) of a process, from /proc/PID/status."""
    out = {}
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(x) for x in value.split()]
    return out["Uid"], out["Gid"], out["Groups"]


def mode(p):
    st = os.lstat(p)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def as_user(base, uid, gid, *args):
    """The copied dialmail binary as uid:gid with no other group."""
    return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
                           str(base / "dialmail"), *args],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def dropped(daemon, base):
    return daemon("user = nobody", "local_domains = localhost", dir=base / "spool")


def test_root_becomes_the_user_with_dialout(dropped):
    uids, gids, groups = ids(dropped.pid)
    assert uids == [NOBODY.pw_uid] * 4
    assert gids == [NOBODY.pw_gid] * 4
    assert sorted(groups) == sorted({NOBODY.pw_gid, grp.getgrnam("dialout").gr_gid})
    (ev,) = dropped.wait_event(1030)
    assert ev["user"] == "nobody" and ev["uid"] == str(NOBODY.pw_uid)
    assert "dialout" in ev["groups"]
    assert dropped.events_with(1031) == []


def test_spool_and_logs_belong_to_the_user_and_are_not_for_others(dropped):
    u, g = NOBODY.pw_uid, NOBODY.pw_gid
    assert mode(dropped.dir) == (0o751, u, g)  # o+x: public/submit.sock
    assert mode(dropped.dir / "log") == (0o750, u, g)
    for name in ("events.jsonl", "tracking.log"):
        assert mode(dropped.dir / "log" / name) == (0o640, u, g)
    assert mode(dropped.dir / "control.sock") == (0o660, u, g)
    for p in dropped.dir.rglob("*"):
        assert os.lstat(p).st_uid == u, p
        assert os.lstat(p).st_mode & 0o007 == 0 or p.name in (
            "config.path", "scheduler.state", "public", "submit.sock"), p


def test_mail_is_queued_and_delivered_as_the_user(dropped):
    dropped.send("a@localhost", ["postmaster@localhost"], b"Subject: t\r\n\r\nhello\r\n")
    files = wait_until(lambda: dropped.maildir_files("postmaster"), 10)
    assert b"hello" in files[0].read_bytes()
    assert os.stat(files[0]).st_uid == NOBODY.pw_uid
    dropped.wait_event(2020)


def test_root_sendmail_writes_as_the_spool_owner(dropped):
    env = dict(os.environ, DIALMAIL_DIR=str(dropped.dir), DIALMAIL_CONFIG=str(dropped.config))
    r = subprocess.run([dropped.bin, "sendmail", "-i", "postmaster@localhost"],
                       input=b"Subject: cron\n\nfrom root\n", capture_output=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    files = wait_until(lambda: dropped.maildir_files("postmaster"), 10)
    assert b"from root" in files[0].read_bytes()
    # The daemon could read what root queued: nothing is left behind.
    assert wait_until(lambda: not list((dropped.dir / "queue").iterdir()), 10)


def test_another_user_submits_through_the_closed_spool(dropped, base):
    """The daemon dropped to nobody with its spool 0751: a stranger (no
    passwd entry, no group) cannot list or write it, yet its sendmail hands
    the message to DIR/public/submit.sock and it is delivered."""
    conf = base / "readable.conf"  # pytest's tmp_path, where the test's is, is 0700
    shutil.copy2(dropped.config, conf)
    conf.chmod(0o644)
    r = subprocess.run(["setpriv", "--reuid=%d" % STRANGER, "--regid=%d" % STRANGER,
                        "--clear-groups", str(base / "dialmail"), "sendmail", "--dir",
                        str(dropped.dir), "--config", str(conf), "-i",
                        "postmaster@localhost"],
                       input="Subject: stranger\n\nfrom a stranger\n", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    files = wait_until(lambda: [f for f in dropped.maildir_files("postmaster")
                                if b"from a stranger" in f.read_bytes()], 10)
    assert files, dropped.events()
    r = as_user(base, STRANGER, STRANGER, "queue", "--dir", str(dropped.dir))
    assert r.returncode != 0  # the spool itself stays closed to it


def test_control_socket_permission_denied_is_said(dropped, base):
    r = as_user(base, STRANGER, STRANGER, "status", "--dir", str(dropped.dir))
    assert r.returncode == 77, r
    assert "permission denied" in r.stderr and "not running" not in r.stdout + r.stderr
    r = as_user(base, STRANGER, STRANGER, "reload", "--dir", str(dropped.dir))
    assert r.returncode == 77 and "permission denied" in r.stderr
    # The admin group (by default the daemon's group) may.
    r = as_user(base, STRANGER, NOBODY.pw_gid, "status", "--dir", str(dropped.dir))
    assert r.returncode == 0, r
    assert "queue: 0 messages" in r.stdout
    r = subprocess.run([dropped.bin, "status", "--dir", str(dropped.dir)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and "link: " in r.stdout


def test_peer_credentials_are_checked_behind_the_file_mode(dropped, base):
    # Someone opens the socket to all: the daemon still turns strangers away.
    dropped.dir.chmod(0o755)
    (dropped.dir / "control.sock").chmod(0o666)
    r = as_user(base, STRANGER, STRANGER, "status", "--dir", str(dropped.dir), "--json")
    assert r.returncode == 77, r
    assert '"permission denied"' in r.stdout
    (ev,) = dropped.wait_event(4190)
    assert ev["uid"] == str(STRANGER)
    r = as_user(base, STRANGER, STRANGER, "flush", "--dir", str(dropped.dir))
    assert r.returncode == 77 and "permission denied" in r.stderr


def test_root_without_a_user_to_become_refuses_to_start(run_cli, base):
    for setting, why in (("user = no-such-dialmail-user", "user no-such-dialmail-user does "
                          "not exist"), ("user = root", "user root is root"),
                         ("group = no-such-dialmail-group", "group no-such-dialmail-group "
                          "does not exist"), ("admin_group = no-such-admins",
                                              "admin_group no-such-admins does not exist")):
        cfg = base / "c.conf"
        user = "" if setting.startswith("user") else "user = nobody\n"
        cfg.write_text("listen = 127.0.0.1:1\nsyslog = no\n%s%s\n" % (user, setting))
        r = run_cli("daemon", "--dir", str(base / "refused"), "--config", str(cfg))
        assert r.returncode == 78, r
        assert why in r.stderr and "run_as_root = yes" in r.stderr, r.stderr
        assert not (base / "refused").exists()  # nothing opened, nothing created


def test_run_as_root_stays_root_and_says_so(daemon):
    d = daemon()  # the launcher's run_as_root = yes
    uids, _, _ = ids(d.pid)
    assert uids == [0, 0, 0, 0]
    (ev,) = d.wait_event(1031)
    assert "run_as_root" in ev["text"]
    assert d.events_with(1030) == []


def test_a_missing_supplementary_group_is_skipped(daemon, base):
    d = daemon("user = nobody", "supplementary_groups = dialout, no-such-group-xyz",
               dir=base / "spool")
    _, _, groups = ids(d.pid)
    assert grp.getgrnam("dialout").gr_gid in groups
    assert "supplementary group no-such-group-xyz does not exist" in d.log_text()


def test_the_spool_handover_follows_no_link(daemon, base):
    """What an earlier root run left becomes the user's; a link the user
    could have planted (to a directory or a file of root's) is not followed
    and its target stays root's."""
    spool = base / "spool"
    (spool / "log").mkdir(parents=True)
    old = spool / "log" / "events.jsonl"
    old.write_text("")  # root's, from a run before the drop
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret").write_text("root's\n")
    (spool / "to-dir").symlink_to(outside)
    (spool / "to-file").symlink_to(outside / "secret")
    d = daemon("user = nobody", dir=spool)
    assert os.stat(old).st_uid == NOBODY.pw_uid
    for p in (outside, outside / "secret"):
        assert os.stat(p).st_uid == 0, p
    assert os.lstat(spool / "to-dir").st_uid == NOBODY.pw_uid  # the link itself
    assert d.alive()
