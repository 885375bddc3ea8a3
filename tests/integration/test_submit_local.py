# Submission for every local user (issue 10 item 5): sendmail run as nobody
# (setpriv) cannot write the spool nor read the secrets, and hands the
# message to the daemon's local submission socket (DIR/public/submit.sock),
# which records the uid. sendmail -bs (a PHP-style SMTP dialogue on
# stdin/stdout), -bv, -bi/newaliases, -q, -oi, -oem, -N, mail(1) from
# bsd-mailx and git send-email. An unknown local recipient bounces to the
# sender alone.
# Everything a user other than root touches lives in a 0755 directory
# (pytest's tmp_path is private to root).
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from daemon import Daemon, write_config
from ports import free_port
from wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DIALMAIL_BIN", ROOT / "build" / "dialmail")).resolve()
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def site(tmp_path, pki):
    """A running daemon whose spool, configuration and binary other users
    can reach; its TLS key and users file are mode 600."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run sendmail as nobody")
    pub = Path(tempfile.mkdtemp(prefix="dialmail-submit-"))
    pub.chmod(0o755)
    bindir = pub / "bin"
    bindir.mkdir(mode=0o755)
    shutil.copy2(BIN, bindir / "dialmail")
    for name in ("sendmail", "newaliases"):
        (bindir / name).symlink_to("dialmail")
    users = pub / "users"
    users.write_text("alice {PLAIN}secret\n")
    users.chmod(0o600)
    port = free_port()
    cfg = pub / "dialmail.conf"
    write_config(cfg, port, ["hostname = gw.example", "local_domains = gw.example, example.org",
                             "local_recipients = alice, bob, nobody",
                             "tls_cert_file = %s" % pki["cert"],
                             "tls_key_file = %s" % pki["key"], "auth_users_file = %s" % users])
    cfg.chmod(0o644)
    d = Daemon(bindir / "dialmail", pub / "spool", cfg, port, tmp_path).start()
    d.bin_dir = bindir
    yield d
    d.finalize()
    shutil.rmtree(pub, ignore_errors=True)


def as_nobody(d, *argv, input=b"", env=None):
    e = dict(os.environ, DIALMAIL_DIR=str(d.dir), **(env or {}))
    e.pop("DIALMAIL_CONFIG", None)
    return subprocess.run(NOBODY + [str(d.bin_dir / argv[0]), *argv[1:]], input=input,
                          capture_output=True, env=e, timeout=30)


def mails(d, user):
    return [p.read_bytes() for p in d.maildir_files(user)]


def bounces(d):
    """The DSNs in nobody's mailbox about nosuch@gw.example."""
    return [m for m in mails(d, "nobody")
            if b"Final-Recipient: rfc822; nosuch@gw.example" in m]


def test_nobody_submits_and_an_unknown_recipient_bounces_alone(site):
    d = site
    r = as_nobody(d, "sendmail", "-oi", "-oem", "-N", "never", "alice", "nosuch",
                  input=b"Subject: from cron\n\nline\n.\nafter the dot\n")
    assert r.returncode == 0, r.stderr
    assert r.stderr == b"", r.stderr  # no "Permission denied" on the secrets
    got = wait_until(lambda: mails(d, "alice"), 10)
    assert got and b"after the dot" in got[0] and b"\n.\n" in got[0], got
    assert b"local uid 65534" in got[0] and b"From: nobody <nobody@gw.example>" in got[0]
    bounce = wait_until(lambda: bounces(d), 10)
    assert len(bounce) == 1, bounce
    assert b"alice@gw.example" not in bounce[0]
    ev = d.wait_event(2002)
    assert ev and ev[0]["client"] == "local uid 65534", ev


def test_php_style_bs_dialogue_as_nobody(site):
    d = site
    e = dict(os.environ, DIALMAIL_DIR=str(d.dir))
    p = subprocess.Popen(NOBODY + [str(d.bin_dir / "sendmail"), "-bs"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=e)

    def reply():
        lines = []
        while True:
            line = p.stdout.readline()
            assert line, lines
            lines.append(line)
            if line[3:4] == b" ":
                return lines

    def cmd(text):
        p.stdin.write(text + b"\r\n")
        p.stdin.flush()
        return reply()

    try:
        assert reply()[0].startswith(b"220 ")
        assert cmd(b"EHLO [127.0.0.1]")[-1].startswith(b"250 ")
        assert cmd(b"MAIL FROM:<app@gw.example>")[0].startswith(b"250")
        assert cmd(b"RCPT TO:<bob@gw.example>")[0].startswith(b"250")
        assert cmd(b"DATA")[0].startswith(b"354")
        r = cmd(b"Subject: from php\r\nTo: bob@gw.example\r\n\r\nHello from -bs\r\n.")
        assert r[0].startswith(b"250 2.0.0 Ok: queued as"), r
        assert cmd(b"QUIT")[0].startswith(b"221")
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    got = wait_until(lambda: mails(d, "bob"), 10)
    assert got and b"Hello from -bs" in got[0]


def test_bv_bi_newaliases_and_q(site):
    d = site
    r = as_nobody(d, "sendmail", "-bv", "alice", "nosuch", "friend@far.example")
    assert r.returncode == 67, r
    assert r.stdout.decode().splitlines() == [
        "alice@gw.example... deliverable: local mailbox",
        "nosuch@gw.example... undeliverable: User unknown",
        "friend@far.example... deliverable: relayed (queued for the remote domain)"]
    assert d.queue_ids() == [] and mails(d, "alice") == []  # -bv sends nothing
    for argv in (["sendmail", "-bi"], ["newaliases"]):
        r = as_nobody(d, *argv)
        assert r.returncode == 0, r
        assert b"no database to rebuild" in r.stdout, r.stdout
    r = subprocess.run([str(d.bin_dir / "sendmail"), "-q"], capture_output=True,
                       env=dict(os.environ, DIALMAIL_DIR=str(d.dir)), timeout=30)
    assert r.returncode == 0, r


def test_no_daemon_is_a_temporary_failure(site):
    d = site
    d.stop()
    r = as_nobody(d, "sendmail", "alice", input=b"Subject: x\n\nx\n")
    assert r.returncode == 75, r
    assert b"no dialmail daemon answers" in r.stderr, r.stderr


def test_mail_command_as_nobody(site):
    """bsd-mailx's mail(1) calls /usr/sbin/sendmail: in a private mount
    namespace ours is bound over it."""
    if not shutil.which("mail"):
        pytest.skip("bsd-mailx is not installed")
    d = site
    script = ("mount --bind %s /usr/sbin/sendmail && exec %s env DIALMAIL_DIR=%s HOME=/tmp "
              "mail -s 'from mail(1)' alice" % (d.bin_dir / "dialmail", " ".join(NOBODY), d.dir))
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       input=b"sent with bsd-mailx\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r
    got = wait_until(lambda: mails(d, "alice"), 10)
    assert got and b"Subject: from mail(1)" in got[0] and b"sent with bsd-mailx" in got[0], got


def test_git_send_email_cc_of_an_unknown_author(site, tmp_path):
    """git send-email's automatic Cc of the patch's author, here a local
    user who does not exist: the patch reaches the To: recipient, the
    author's copy bounces to the sender; git send-email succeeds."""
    if subprocess.run(["git", "send-email", "--help"], capture_output=True).returncode:
        pytest.skip("git-email is not installed")
    d = site
    work = d.bin_dir.parent / "git"
    work.mkdir(mode=0o777)
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=Ghost", "-c", "user.email=nosuch@gw.example"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f").write_text("x\n")
    subprocess.run(git + ["add", "f"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "a patch"], check=True)
    subprocess.run(git + ["format-patch", "-q", "-1", "-o", str(work)], check=True)
    patch = next(work.glob("*.patch"))
    patch.chmod(0o644)
    env = {"HOME": str(work), "DIALMAIL_DIR": str(d.dir), "GIT_COMMITTER_NAME": "Nobody",
           "GIT_COMMITTER_EMAIL": "nobody@gw.example", "GIT_AUTHOR_NAME": "Nobody",
           "GIT_AUTHOR_EMAIL": "nobody@gw.example"}
    r = subprocess.run(NOBODY + ["env", *("%s=%s" % kv for kv in env.items()), "git",
                                 "send-email", "--sendmail-cmd", str(d.bin_dir / "sendmail"),
                                 "--from", "Nobody <nobody@gw.example>",
                                 "--to", "alice@gw.example", "--confirm", "never", str(patch)],
                       capture_output=True, timeout=60, cwd=str(work))
    assert r.returncode == 0, r
    got = wait_until(lambda: mails(d, "alice"), 10)
    assert got and b"Subject: [PATCH] a patch" in got[0], got
    assert len(wait_until(lambda: bounces(d), 10)) == 1
