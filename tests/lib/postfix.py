"""A private Postfix instance on loopback, for tests and benchmarks.

Everything lives under one temporary directory (config, queue, data) that is
removed on stop; Postfix runs in a private mount namespace with its own
/etc/hosts and a resolv.conf naming 127.0.0.1, so it never asks the machine's
resolver. Needs root (Postfix's master runs as root and drops to `postfix`).

    from postfix import PostfixInstance
    with PostfixInstance(relay_domains=["bench.example"], hold=True) as pf:
        ... talk SMTP to 127.0.0.1:pf.port ...
        assert pf.queue_count() == 1
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTQUEUE = "/usr/sbin/postqueue"
POSTSUPER = "/usr/sbin/postsuper"
QUEUE_DIRS = ("maildrop", "incoming", "active", "deferred", "hold")

# master.cf with every chroot column set to "n": the queue directory is a
# temporary one, and a chroot would need copies of /etc files inside it.
MASTER_CF = """\
{smtp_listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def free_port(host="127.0.0.1"):
    """A TCP port on host that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=15.0, pid_alive=None):
    """Wait until host:port accepts a TCP connection; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_alive is not None and not pid_alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def private_resolver_argv(root, argv, hostname, hosts=None):
    """argv wrapped to run in a private mount namespace whose /etc/hosts
    ("127.0.0.1 localhost HOSTNAME", plus hosts {name: address}) and
    /etc/resolv.conf (nameserver 127.0.0.1) are files written under root, so
    the program never asks the machine's resolver. The namespace lives as
    long as the program and its children; unshare and sh exec in place, so
    the PID started is the program's. Needs root (unshare -m)."""
    hosts_file = os.path.join(root, "hosts")
    resolv = os.path.join(root, "resolv.conf")
    with open(hosts_file, "w") as f:
        f.write("127.0.0.1 localhost %s\n" % hostname)
        for name, addr in (hosts or {}).items():
            f.write("%s %s\n" % (addr, name))
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    script = ('mount --bind "$1" /etc/hosts && '
              'mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"')
    return ["unshare", "-m", "--propagation", "private",
            "sh", "-c", script, "sh", hosts_file, resolv] + list(argv)


class PostfixError(RuntimeError):
    pass


class PostfixInstance:
    """A Postfix master with its own config directory, queue and port.

    hold=True puts every accepted message in the hold queue (no delivery
    attempt, no qmgr work); hold=False with defer_transports=smtp,relay keeps
    relay mail deferred instead. `main` overrides or adds main.cf settings.
    """

    def __init__(self, port=None, relay_domains=("bench.example",),
                 mydestination="", hold=True, main=None, hosts=None,
                 hostname="postfix.test", base_dir=None):
        self.port = port or free_port()
        self.hostname = hostname
        self.relay_domains = list(relay_domains)
        self.mydestination = mydestination
        self.hold = hold
        self.main_extra = dict(main or {})
        self.hosts = dict(hosts or {})
        self.base_dir = base_dir
        self.root = None
        self.master_pid = None
        self._running = False

    # -- paths -----------------------------------------------------------
    @property
    def config_dir(self):
        return os.path.join(self.root, "etc")

    @property
    def queue_dir(self):
        return os.path.join(self.root, "spool")

    @property
    def data_dir(self):
        return os.path.join(self.root, "data")

    @property
    def maillog(self):
        return os.path.join(self.root, "maillog")

    # -- configuration ---------------------------------------------------
    def main_settings(self):
        """main.cf as a dict: loopback only, no DNS, relay mail kept."""
        s = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.hostname,
            "mydomain": "test",
            "myorigin": "$myhostname",
            "mydestination": self.mydestination,
            "relay_domains": ", ".join(self.relay_domains),
            "mynetworks": "127.0.0.0/8",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "biff": "no",
            "append_dot_mydomain": "no",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtputf8_enable": "no",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.root,
            "smtpd_relay_restrictions":
                "permit_mynetworks, reject_unauth_destination",
            "default_transport": "smtp",
            "relay_transport": "relay",
        }
        if self.hold:
            # Every message goes straight to the hold queue at cleanup time.
            s["smtpd_data_restrictions"] = "check_client_access static:HOLD"
        else:
            s["defer_transports"] = "smtp, relay"
        s.update(self.main_extra)
        return s

    def _write_config(self):
        os.makedirs(self.config_dir)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            for k, v in self.main_settings().items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(smtp_listen="127.0.0.1:%d" % self.port))

    def _make_dirs(self):
        pw = pwd.getpwnam("postfix")
        os.makedirs(self.queue_dir)
        os.makedirs(self.data_dir)
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data_dir, 0o700)

    # -- life cycle ------------------------------------------------------
    def start(self, timeout=30.0):
        if os.geteuid() != 0:
            raise PostfixError("a private Postfix instance needs root")
        self.root = tempfile.mkdtemp(prefix="postfix-", dir=self.base_dir)
        # Postfix's daemons (user postfix) must traverse to the queue.
        os.chmod(self.root, 0o755)
        try:
            self._write_config()
            self._make_dirs()
            self._run([POSTFIX, "-c", self.config_dir, "check"])
            self._start_master()
            ok = wait_for_port("127.0.0.1", self.port, timeout,
                               pid_alive=self._master_alive)
            if not ok:
                raise PostfixError("postfix did not listen on port %d:\n%s"
                                   % (self.port, self.log_tail()))
        except BaseException:
            self.stop()
            raise
        return self

    def _start_master(self):
        # The mount namespace lives as long as the master and its children.
        self._running = True
        self._run(private_resolver_argv(self.root, [POSTFIX, "-c", self.config_dir, "start"],
                                        self.hostname, self.hosts))
        pid_file = os.path.join(self.queue_dir, "pid", "master.pid")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(pid_file) as f:
                    self.master_pid = int(f.read().strip())
                return
            except (OSError, ValueError):
                time.sleep(0.05)
        raise PostfixError("no master.pid:\n" + self.log_tail())

    def alive(self):
        """True while the master process runs."""
        return self.master_pid is not None and self._master_alive()

    def _master_alive(self):
        if self.master_pid is None:
            return True  # not known yet: let the port wait decide
        try:
            os.kill(self.master_pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(self, keep=False):
        """Stop the master (and so all daemons); remove the directory."""
        if self._running:
            self._running = False
            subprocess.run([POSTFIX, "-c", self.config_dir, "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30, check=False)
        if self.master_pid is not None:
            deadline = time.monotonic() + 10
            while self._master_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._master_alive():
                # The master leads its own process group with its daemons.
                try:
                    os.killpg(self.master_pid, signal.SIGKILL)
                except OSError:
                    pass
            self.master_pid = None
        if self.root and not keep:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- inspection ------------------------------------------------------
    def queue_files(self, queues=QUEUE_DIRS):
        """Paths of the queue files in the named queues."""
        out = []
        for q in queues:
            for dirpath, _, files in os.walk(os.path.join(self.queue_dir, q)):
                out.extend(os.path.join(dirpath, f) for f in files)
        return out

    def queue_count(self, queues=QUEUE_DIRS):
        """Distinct queued messages (a file moving between queues while we
        walk them is counted once: the file name is the queue id)."""
        return len({os.path.basename(p) for p in self.queue_files(queues)})

    def postqueue(self):
        """`postqueue -p` output (the queue listing)."""
        return self._run([POSTQUEUE, "-c", self.config_dir, "-p"]).stdout

    def flush_queue(self):
        """Delete every queued message (a fresh queue without a restart)."""
        self._run([POSTSUPER, "-c", self.config_dir, "-d", "ALL"])

    def postconf(self, *args):
        return self._run([POSTCONF, "-c", self.config_dir] + list(args)).stdout

    def log_tail(self, lines=30):
        try:
            with open(self.maillog, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, TypeError):
            return "(no maillog)"

    def _run(self, argv):
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60, check=False)
        if p.returncode != 0:
            raise PostfixError("%s failed (%d): %s%s" % (
                " ".join(argv), p.returncode, p.stdout, p.stderr))
        return p


def _self_check():
    """`/usr/bin/python3 tests/lib/postfix.py`: start, queue one message over
    SMTP, check it is held and nothing is left behind after stop."""
    import smtplib
    pf = PostfixInstance(relay_domains=["bench.example"], hold=True)
    with pf:
        root, pid = pf.root, pf.master_pid
        with open("/proc/%d/root/etc/resolv.conf" % pid) as f:
            assert "nameserver 127.0.0.1" in f.read(), "resolver not private"
        with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.test",
                          timeout=10) as s:
            s.sendmail("a@bench.example", ["b@bench.example"],
                       b"Subject: self-check\r\n\r\nhello\r\n")
        assert pf.queue_count(("hold",)) == 1, pf.postqueue()
        assert "1 Request" in pf.postqueue(), pf.postqueue()
    assert not os.path.exists(root), root
    try:
        os.kill(pid, 0)
        raise AssertionError("master %d still running" % pid)
    except ProcessLookupError:
        pass
    print("postfix.py self-check: ok (port %d)" % pf.port)


if __name__ == "__main__":
    _self_check()
