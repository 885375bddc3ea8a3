"""On-Demand Mail Relay (RFC 2645) for the tests: a dialmail hub with an
ODMR port (plain, or with a certificate), a dialmail branch that retrieves
with ATRN, the client side of the protocol played by the test (CRAM-MD5,
the reversed session), and a proxy that cuts the line."""
import base64
import hashlib
import hmac
import socket
import threading

import batchwire

from ports import free_port

USER, PASSWORD = "alice", "s3cret-Pw"


def users_file(tmp_path):
    p = tmp_path / "odmr-users"
    p.write_text("%s {PLAIN}%s\nbob {PLAIN}bobs-Pw\n" % (USER, PASSWORD))  # CRAM-MD5
    p.chmod(0o600)
    return p


def hub(daemon, tmp_path, *extra):
    odmr_port = free_port()
    d = daemon("hostname = hub.example", "hold_domains = branch.example, other.example",
               "mynetworks = 192.0.2.0/24", "auth_users_file = %s" % users_file(tmp_path),
               "odmr_listen = 127.0.0.1:%d" % odmr_port,
               "odmr_domains = alice=branch.example, bob=other.example",
               "queue_run_interval = 1s", *extra)
    d.odmr_port = odmr_port
    return d


def cram(c, user, password):
    r = c.cmd("AUTH CRAM-MD5")
    assert r.code == 334, r
    ch = base64.b64decode(r.text)
    mac = hmac.new(password.encode(), ch, hashlib.md5).hexdigest()
    return c.cmd(base64.b64encode(("%s %s" % (user, mac)).encode()).decode())


def recv_exact(c, n):
    """n octets from the SmtpRaw connection c."""
    while len(c.buf) < n:
        c._fill(10)
    out, c.buf = c.buf[:n], c.buf[n:]
    return out


def serve_reversed(c, hold_after=None, batch_abort=None, commands=None, batches=None):
    """After 250 to ATRN: play the SMTP server on c until QUIT (or EOF);
    returns the messages received as (rcpts, data). hold_after: drop the
    connection instead of answering the end of that message's data.
    batch_abort: a dictionary version: offer XDMBATCH with it, read the
    batch (its compressed bytes go to the list batches), answer that it was
    aborted. commands: a list that gets each command line."""
    c.send(b"220 branch.example ESMTP test\r\n")
    got, rcpts, data = [], [], None
    while True:
        try:
            line = c._line(10).decode()
        except EOFError:
            return got
        verb = line[:4].upper()
        if commands is not None:
            commands.append(line.strip())
        if verb in ("EHLO", "HELO"):
            c.send(b"250-branch.example\r\n" + (
                b"250-PIPELINING\r\n250 XDMBATCH 1 DICT=%d\r\n" % batch_abort
                if batch_abort is not None else b"250 PIPELINING\r\n"))
        elif line.upper().startswith("XDMBATCH ") and batch_abort is not None:
            c.send(b"250 2.0.0 XDMBATCH go ahead\r\n")
            data = batchwire.read_segments(lambda n: recv_exact(c, n))
            if batches is not None:
                batches.append(data)
            c.send(b"451 4.6.0 XDMBATCH aborted: test\r\n")
        elif verb == "MAIL":
            rcpts = []
            c.send(b"250 ok\r\n")
        elif verb == "RCPT":
            rcpts.append(line.split("<", 1)[1].split(">", 1)[0])
            c.send(b"250 ok\r\n")
        elif verb == "DATA":
            c.send(b"354 go\r\n")
            data = b""
            while not data.endswith(b"\r\n.\r\n"):
                data += c._line(10)
            if hold_after is not None and len(got) == hold_after:
                c.close()
                return got
            got.append((rcpts, data[:-3].replace(b"\r\n..", b"\r\n.")))
            c.send(b"250 queued\r\n")
        elif verb == "QUIT":
            c.send(b"221 bye\r\n")
            got.append("QUIT")
            return got
        else:
            c.send(b"502 no\r\n")


def tls_hub(daemon, tmp_path, pki, *extra):
    return hub(daemon, tmp_path, "tls_cert_file = %s" % pki["cert"],
               "tls_key_file = %s" % pki["key"], *extra)


def branch(daemon, tmp_path, hub_target, *session, password=PASSWORD, domains="branch.example",
           top=()):
    """A branch with retrieve = atrn; session: more [session] lines, top:
    more global ones."""
    auth = tmp_path / ("branch-auth-%s" % password)
    auth.write_text("hub %s %s\n" % (USER, password))
    auth.chmod(0o600)
    return daemon("hostname = gw.branch.example", "local_domains = branch.example",
                  "local_recipients = bob", "queue_run_interval = 1s",
                  "auth_file = %s" % auth, *top,
                  "[phonebook lan]", "type = always",
                  "[session]", "retrieve = atrn", "atrn_host = %s" % hub_target,
                  "atrn_domains = %s" % domains, "atrn_auth = hub", "idle_timeout = 1s",
                  "retrieve_timeout = 10s", *session)


class CutProxy:
    """TCP proxy to target that cuts both sides once `limit` octets went
    from the hub to the branch (the first connection only, or every one with
    every=True: set .limit before each; None: never). up and down keep every
    octet each way."""

    def __init__(self, target, limit, every=False, graceful=False):
        """graceful: at the cut the branch still gets every octet before it
        (then EOF), as from a modem whose carrier drops after the data it
        took: the hub's side is closed, the branch's only after its EOF."""
        self.target, self.limit, self.every = target, limit, every
        self.graceful = graceful
        self.up_cut = None  # bytes: cut both sides before the branch sends them
        self.up, self.down = bytearray(), bytearray()
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        self.conns = 0
        self.stop_flag = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.ls.settimeout(0.2)
        while not self.stop_flag:
            try:
                a, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            b = socket.create_connection(self.target)
            limit = self.limit if self.conns == 1 or self.every else None
            threading.Thread(target=self.pipe, args=(a, b, None, self.up, self.up_cut),
                             daemon=True).start()
            threading.Thread(target=self.pipe, args=(b, a, limit, self.down),
                             daemon=True).start()

    def pipe(self, src, dst, limit, keep, cut_at=None):
        sent = 0
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                if cut_at is not None:
                    tail = bytes(keep[-len(cut_at):]) + data
                    at = tail.find(cut_at)
                    if at >= 0:  # forward what comes before it, then cut
                        before = max(0, at - (len(tail) - len(data)))
                        keep += data[:before]
                        dst.sendall(data[:before])
                        break
                if limit is not None and sent + len(data) >= limit:
                    keep += data[: limit - sent]
                    dst.sendall(data[: limit - sent])
                    if self.graceful:
                        return self.cut_gracefully(src, dst)
                    break
                keep += data
                dst.sendall(data)
                sent += len(data)
        except OSError:
            if self.graceful and limit is None:
                return self.drain(src)
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut_gracefully(self, hub_side, branch_side):
        hub_side.close()
        try:
            branch_side.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def drain(self, s):
        """The hub's side is gone: read the branch's side to its EOF, then close
        (the other direction's thread may have closed it already)."""
        try:
            s.settimeout(10)
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()

    def stop(self):
        self.stop_flag = True
        self.ls.close()
