"""A private Dovecot LMTP server for the tests."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from ports import free_port
from wait import wait_until

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USERS = ("alice", "bob")


class Dovecot:
    """A private Dovecot with only LMTP: users alice and bob, Maildirs under
    root/mail. Its base_dir, state and log are under tmp_path; the mail store
    is in a directory the unprivileged mail user can reach (pytest's
    tmp_path is private to root)."""

    def __init__(self, tmp_path, passwords=None):
        """passwords: {user: password} for its passdb (the auth service that
        auth_socket serves); other users get an unusable one."""
        if os.geteuid() != 0:
            pytest.skip("Dovecot runs as root here (mail_uid nobody)")
        if not os.path.exists(DOVECOT):
            pytest.fail("dovecot is not installed: run scripts/install-deps")
        self.dir = tmp_path / "dovecot"
        self.dir.mkdir()
        self.store = Path(tempfile.mkdtemp(prefix="dialmail-dovecot-"))
        self.store.chmod(0o755)
        self.mail = self.store / "mail"
        self.mail.mkdir()
        shutil.chown(self.mail, "nobody", "nogroup")
        self.port = free_port()
        self.socket = self.dir / "lmtp.sock"
        self.log = self.dir / "dovecot.log"
        self.users = self.store / "users"  # read by the auth process (user dovecot)
        pw = passwords or {}
        self.users.write_text("".join("%s:{PLAIN}%s:65534:65534::%s/%s::\n" %
                                      (u, pw.get(u, "unused"), self.mail, u) for u in USERS))
        self.auth_socket = self.dir / "run" / "auth-client"  # the auth-client protocol
        self.users.chmod(0o644)
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(self.config())
        self.proc = None

    def config(self):
        return """
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = lmtp
ssl = no
auth_mechanisms = plain login
listen = 127.0.0.1
postmaster_address = postmaster@branch.example
auth_username_format = %Ln
mail_location = maildir:{mail}/%n/Maildir
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener {sock} {{
    mode = 0666
  }}
}}
""".format(d=self.dir, mail=self.mail, users=self.users, port=self.port, sock=self.socket)

    def start(self):
        self.out = open(self.dir / "stdout", "wb")
        self.proc = subprocess.Popen([DOVECOT, "-c", str(self.conf), "-F"], stdout=self.out,
                                     stderr=subprocess.STDOUT)
        ok = wait_until(lambda: self.socket.exists() and self.port_open(), timeout=10)
        assert ok, self.diagnostics()

    def port_open(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def diagnostics(self):
        out = (self.dir / "stdout").read_text(errors="replace")
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "dovecot stdout:\n%s\nlog:\n%s" % (out, log)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc:
            self.out.close()
        shutil.rmtree(self.store, ignore_errors=True)

    def inbox(self, user):
        """Contents of the user's delivered messages (Maildir new/), by name."""
        new = self.mail / user / "Maildir" / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []
