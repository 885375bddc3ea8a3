# A scripted SMTP server for tests: it records the exact byte stream of each
# connection with timestamps and answers by a script (extensions offered,
# per-recipient replies, 421 mid-session, drop after the final dot, a reply
# latency that stands in for a slow link; LMTP mode: LHLO and one final
# reply per accepted recipient, RFC 2033). Invariant: every reply to a
# command that arrived at time t leaves at t + delay, in order, so the
# client's waits show as gaps in what it sends.
#
# Use in a test:   rec = Recorder(extensions=[...]); port = rec.start(); ...;
#                  rec.stop(); rec.sessions[0].log / .messages / .bursts()
# Or standalone:   python3 smtp_recorder.py --port 2526 --ext PIPELINING ...
import argparse
import base64
import json
import socket
import ssl
import threading
import time

CRLF = b"\r\n"


class Message:
    """One message as the server received it."""

    def __init__(self, mail_from, params, rcpts, data, mode):
        self.mail_from = mail_from
        self.params = params
        self.rcpts = rcpts
        self.data = data  # content, dot-unstuffed
        self.mode = mode  # "DATA" or "BDAT"

    def __repr__(self):
        return "Message(%r, %r, %d bytes, %s)" % (self.mail_from, self.rcpts, len(self.data), self.mode)


class Session:
    """What happened on one connection: log of (time, "C"|"S"|"T", bytes)
    ("T" marks the start of TLS), commands, messages, AUTH, TLS."""

    def __init__(self):
        self.log = []
        self.commands = []
        self.messages = []
        self.auth = []  # (mechanism, user, password, accepted, under_tls)
        self.tls = False
        self.tls_resumed = False  # the handshake resumed a session (ticket)
        self.closed_at = None
        self.started = time.monotonic()

    def client_bytes(self, tls=None):
        """All client bytes; tls=False: only before TLS, True: only after."""
        out, in_tls = b"", False
        for _, d, b in self.log:
            if d == "T":
                in_tls = True
            elif d == "C" and (tls is None or tls == in_tls):
                out += b
        return out

    def bursts(self, gap):
        """Client bursts: runs of client data separated by a silence of at
        least gap seconds during which the server sent something. Each one
        followed a wait for a reply (the first one waited for the banner)."""
        count, last_c, server_since = 0, None, True
        for t, d, _ in self.log:
            if d == "S":
                server_since = True
            elif d == "C":
                if last_c is None or (server_since and t - last_c >= gap):
                    count += 1
                last_c, server_since = t, False
        return count


class Conn:
    """One connection, served in one thread: read with a timeout, answer
    by the script, send each reply when its time has come."""

    def __init__(self, rec, sock):
        self.rec = rec
        self.sock = sock
        self.s = Session()
        self.buf = b""
        self.out = []  # [(due, bytes)]
        self.closed = False
        self.close_after_flush = False
        self.mode = "cmd"  # cmd, data, bdat, auth-plain, auth-user, auth-pass
        self.bdat_left = 0
        self.bdat_last = False
        self.data = b""
        self.reset()
        self.auth_user = None
        self.nmail = 0

    def reset(self):
        self.mail_from = None
        self.mail_params = ""
        self.rcpts = []
        self.data = b""

    # ---- output
    def reply(self, text, delay=None):
        due = time.monotonic() + (self.rec.delay if delay is None else delay)
        self.out.append((due, text.encode() + CRLF))

    def send_due(self, force=False):
        now = time.monotonic()
        chunk = b""
        while self.out and (force or self.out[0][0] <= now):
            chunk += self.out.pop(0)[1]
        if chunk:
            self.s.log.append((time.monotonic(), "S", chunk))
            try:
                self.sock.sendall(chunk)
            except OSError:
                self.closed = True
        if self.close_after_flush and not self.out:
            self.close()

    def flush(self):
        """Sends everything queued, waiting for its due time."""
        while self.out and not self.closed:
            wait = self.out[-1][0] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.send_due()

    def close(self):
        if not self.closed:
            self.closed = True
            self.s.closed_at = time.monotonic()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    # ---- main loop
    def run(self):
        rec = self.rec
        if rec.banner is not None:
            self.reply(rec.banner, rec.delay if rec.banner_delay is None else rec.banner_delay)
        deadline = time.monotonic() + rec.max_session
        while not self.closed and time.monotonic() < deadline and not rec.stopping:
            self.send_due()
            if self.closed:
                break
            wait = self.out[0][0] - time.monotonic() if self.out else 0.2
            self.sock.settimeout(min(max(wait, 0.001), 0.2))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError:
                break
            if not chunk:
                break
            self.s.log.append((time.monotonic(), "C", chunk))
            self.buf += chunk
            self.feed()
        self.close()

    def feed(self):
        while not self.closed and not self.close_after_flush:
            if self.mode == "silent":
                self.buf = b""
                return
            if self.mode == "bdat":
                if not self.feed_bdat():
                    return
                continue
            i = self.buf.find(b"\n")
            if i < 0:
                return
            line, self.buf = self.buf[: i + 1], self.buf[i + 1 :]
            line = line.rstrip(b"\r\n")
            if self.mode == "data":
                self.data_line(line)
            elif self.mode.startswith("auth-"):
                self.auth_line(line.decode("latin-1"))
            else:
                self.command(line.decode("latin-1"))

    # ---- commands
    def command(self, line):
        self.s.commands.append(line)
        verb = line.split(" ", 1)[0].upper()
        arg = line[len(verb) :].strip()
        rec = self.rec
        if verb == "MAIL":
            self.nmail += 1
        if rec.shutdown_on and verb == rec.shutdown_on[0] and (verb != "MAIL" or self.nmail == rec.shutdown_on[1]):
            self.reply("421 4.3.2 recorder shutting down")
            self.close_after_flush = True
            return
        handler = getattr(self, "cmd_" + verb.lower(), None)
        if handler is None:
            self.reply("502 5.5.2 command not recognized")
        else:
            handler(arg)

    def extensions(self):
        ext = list(self.rec.extensions)
        if self.s.tls or self.rec.tls_context is None:
            ext = [e for e in ext if e.upper() != "STARTTLS"]
        return ext

    def cmd_ehlo(self, arg):
        if self.rec.lmtp:  # RFC 2033 4.1: an LMTP server refuses HELO and EHLO
            self.reply("500 5.5.1 this is LMTP: use LHLO")
        else:
            self.hello()

    def cmd_lhlo(self, arg):
        if self.rec.lmtp:
            self.hello()
        else:
            self.reply("502 5.5.2 command not recognized")

    def hello(self):
        if self.rec.ehlo_reply:
            self.reply(self.rec.ehlo_reply)
            return
        self.reset()
        lines = [self.rec.hostname] + self.extensions()
        text = "\r\n".join("250%s%s" % ("-" if i < len(lines) - 1 else " ", l) for i, l in enumerate(lines))
        self.reply(text)

    def cmd_helo(self, arg):
        if self.rec.lmtp:
            self.reply("500 5.5.1 this is LMTP: use LHLO")
            return
        self.reset()
        self.reply("250 %s" % self.rec.hostname)

    def cmd_starttls(self, arg):
        if self.rec.tls_context is None or self.s.tls:
            self.reply("502 5.5.1 no STARTTLS")
            return
        self.reply("220 2.0.0 ready to start TLS")
        self.flush()
        self.s.log.append((time.monotonic(), "T", b""))
        self.sock.settimeout(10)
        try:
            self.sock = self.rec.tls_context.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.s.tls_error = str(e)
            self.close()
            return
        self.s.tls = True
        self.s.tls_resumed = self.sock.session_reused
        self.buf = b""
        self.reset()

    def cmd_auth(self, arg):
        parts = arg.split()
        mech = parts[0].upper() if parts else ""
        if mech == "PLAIN" and len(parts) > 1:
            self.auth_plain(parts[1])
        elif mech == "PLAIN":
            self.mode = "auth-plain"
            self.reply("334 ")
        elif mech == "LOGIN":
            self.mode = "auth-user"
            self.reply("334 VXNlcm5hbWU6")
        else:
            self.reply("504 5.5.4 mechanism not supported")

    def auth_result(self, mech, user, pw):
        ok = self.rec.auth is not None and (user, pw) == tuple(self.rec.auth)
        self.s.auth.append((mech, user, pw, ok, self.s.tls))
        self.reply("235 2.7.0 authenticated" if ok else "535 5.7.8 bad credentials")

    def auth_plain(self, b64):
        try:
            _, user, pw = base64.b64decode(b64).decode().split("\0")
        except ValueError:
            self.reply("501 5.5.2 bad PLAIN response")
            return
        self.auth_result("PLAIN", user, pw)

    def auth_line(self, line):
        mode, self.mode = self.mode, "cmd"
        if mode == "auth-plain":
            self.auth_plain(line)
        elif mode == "auth-user":
            self.auth_user = base64.b64decode(line).decode()
            self.mode = "auth-pass"
            self.reply("334 UGFzc3dvcmQ6")
        else:
            self.auth_result("LOGIN", self.auth_user, base64.b64decode(line).decode())

    def cmd_mail(self, arg):
        if self.mail_from is not None:
            self.reply("503 5.5.1 nested MAIL command")
            return
        addr, _, params = arg[5:].partition(">")
        addr = addr.lstrip("<")
        size = self.rec.size_limit()
        for p in params.split():
            if p.upper().startswith("SIZE=") and size and int(p[5:]) > size:
                self.reply("552 5.3.4 message too big")
                return
        reply = self.rec.mail_replies.get(addr, "250 2.1.0 Ok")
        if reply.startswith("2"):
            self.mail_from, self.mail_params = addr, params.strip()
        self.reply(reply)

    def cmd_rcpt(self, arg):
        if self.mail_from is None:
            self.reply("503 5.5.1 need MAIL")
            return
        addr = arg[3:].strip().strip("<>")
        reply = self.rec.rcpt_replies.get(addr, "250 2.1.5 Ok")
        if reply.startswith("2"):
            self.rcpts.append(addr)
        self.reply(reply)

    def cmd_data(self, arg):
        if self.mail_from is None:
            self.reply("503 5.5.1 need MAIL")
        elif not self.rcpts:
            self.reply("554 5.5.1 no valid recipients")
        else:
            self.mode = "data"
            self.data = b""
            self.reply("354 go ahead")

    def data_line(self, line):
        if line == b".":
            self.mode = "cmd"
            self.message_done("DATA")
            return
        if line.startswith(b"."):
            line = line[1:]
        self.data += line + CRLF

    def cmd_bdat(self, arg):
        parts = arg.split()
        self.bdat_left = int(parts[0])
        self.bdat_last = len(parts) > 1 and parts[1].upper() == "LAST"
        self.mode = "bdat"

    def feed_bdat(self):
        take = min(self.bdat_left, len(self.buf))
        self.data += self.buf[:take]
        self.buf = self.buf[take:]
        self.bdat_left -= take
        if self.bdat_left > 0:
            return False
        self.mode = "cmd"
        if self.mail_from is None or not self.rcpts:
            self.data = b""
            self.reply("554 5.5.1 no valid recipients" if self.mail_from else "503 5.5.1 need MAIL")
        elif self.bdat_last:
            self.message_done("BDAT")
        else:
            self.reply("250 2.0.0 chunk received")
        return True

    def message_done(self, mode):
        msg = Message(self.mail_from, self.mail_params, list(self.rcpts), self.data, mode)
        self.s.messages.append(msg)
        k = len(self.s.messages)
        self.reset()
        if self.rec.lmtp:
            self.lmtp_replies(msg, k)
            return
        if self.rec.silent_after_data == k:
            self.close_after_flush = False
            self.mode = "silent"  # reads on, never answers again
            return
        if self.rec.drop_after_data == k:
            self.send_due(force=True)
            self.close()
            return
        self.reply(self.rec.data_replies.get(k, "250 2.0.0 Ok: queued as %d" % k))

    def lmtp_replies(self, msg, k):
        """RFC 2033 4.2: one reply per accepted recipient, in RCPT order;
        lmtp_drop_after = (k, n): close after n of message k's replies."""
        drop = self.rec.lmtp_drop_after
        for n, addr in enumerate(msg.rcpts):
            if drop and drop[0] == k and drop[1] == n:
                self.send_due(force=True)
                self.close()
                return
            default = "250 2.0.0 <%s> delivered as %d" % (addr, k)
            self.reply(self.rec.lmtp_replies.get(addr, default))

    def cmd_rset(self, arg):
        self.reset()
        self.reply("250 2.0.0 Ok")

    def cmd_noop(self, arg):
        self.reply("250 2.0.0 Ok")

    def cmd_quit(self, arg):
        self.reply("221 2.0.0 bye")
        self.close_after_flush = True


class Recorder:
    host = "127.0.0.1"  # the address start() binds

    def __init__(self, extensions=("PIPELINING", "CHUNKING", "8BITMIME"), hostname="rec.test",
                 banner=None, banner_delay=None, delay=0.0, rcpt_replies=None, mail_replies=None,
                 data_replies=None, shutdown_on=None, drop_after_data=None, silent_after_data=None,
                 ehlo_reply=None, lmtp=False, lmtp_replies=None, lmtp_drop_after=None,
                 certfile=None, keyfile=None, auth=None, max_session=60.0, hold_banner=False):
        """extensions: EHLO keywords ("SIZE 1000", "AUTH PLAIN LOGIN", "STARTTLS").
        delay: seconds between a command's arrival and its reply (link latency).
        rcpt_replies / mail_replies: address -> reply line. data_replies:
        message number (1-based, per session) -> final reply. shutdown_on:
        ("MAIL", k) = 421 and close at the k-th MAIL, or ("RCPT", 0) at any.
        drop_after_data: message number after whose final dot the
        connection is closed without a reply. silent_after_data: message
        number after whose final dot the server never answers again (the
        connection stays open). hold_banner: never greet.
        auth: (user, password) accepted. lmtp: speak LMTP (LHLO; HELO and
        EHLO refused; after the data one reply per accepted recipient, from
        lmtp_replies: address -> reply, default 250). lmtp_drop_after:
        (k, n) = close the connection after n replies to message k's data."""
        self.extensions = list(extensions)
        self.hostname = hostname
        self.banner = None if hold_banner else (
            banner or "220 %s %s recorder" % (hostname, "LMTP" if lmtp else "ESMTP"))
        self.banner_delay = banner_delay
        self.delay = delay
        self.rcpt_replies = rcpt_replies or {}
        self.mail_replies = mail_replies or {}
        self.data_replies = data_replies or {}
        self.shutdown_on = shutdown_on
        self.drop_after_data = drop_after_data
        self.silent_after_data = silent_after_data
        self.ehlo_reply = ehlo_reply
        self.lmtp = lmtp
        self.lmtp_replies = lmtp_replies or {}
        self.lmtp_drop_after = lmtp_drop_after
        self.auth = auth
        self.max_session = max_session
        self.tls_context = None
        if certfile:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(certfile, keyfile)
        self.sessions = []
        self.stopping = False
        self.lsock = None
        self.threads = []

    def size_limit(self):
        for e in self.extensions:
            if e.upper().startswith("SIZE "):
                return int(e.split()[1])
        return 0

    def start(self, port=0):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((self.host, port))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        t = threading.Thread(target=self.accept_loop, daemon=True)
        t.start()
        self.threads.append(t)
        return self.port

    def accept_loop(self):
        while not self.stopping:
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(self, sock)
            self.sessions.append(conn.s)
            t = threading.Thread(target=conn.run, daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(timeout=5)
        if self.lsock:
            self.lsock.close()

    def wait_closed(self, n=1, timeout=10.0):
        """Waits until n sessions exist and all of them are closed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.sessions) >= n and all(s.closed_at for s in self.sessions):
                return True
            time.sleep(0.02)
        return False


def main():
    ap = argparse.ArgumentParser(description="scripted SMTP server that records byte streams")
    ap.add_argument("--port", type=int, default=2526)
    ap.add_argument("--ext", action="append", default=[], help="EHLO keyword, repeatable")
    ap.add_argument("--delay", type=float, default=0.0, help="reply latency in seconds")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--auth", help="user:password accepted by AUTH")
    ap.add_argument("--log", help="JSON lines: one per session when it ends")
    ap.add_argument("--lmtp", action="store_true", help="speak LMTP (RFC 2033)")
    a = ap.parse_args()
    rec = Recorder(extensions=a.ext, delay=a.delay, certfile=a.cert, keyfile=a.key, lmtp=a.lmtp,
                   auth=tuple(a.auth.split(":", 1)) if a.auth else None, max_session=3600)
    rec.start(a.port)
    print("listening on 127.0.0.1:%d" % rec.port, flush=True)
    done = 0
    try:
        while True:
            time.sleep(0.2)
            for s in rec.sessions[done:]:
                if not s.closed_at:
                    break
                done += 1
                if a.log:
                    with open(a.log, "a") as f:
                        f.write(json.dumps({
                            "log": [[t - s.started, d, b.decode("latin-1")] for t, d, b in s.log],
                            "messages": len(s.messages), "bursts": s.bursts(a.delay / 2),
                        }) + "\n")
    except KeyboardInterrupt:
        rec.stop()


if __name__ == "__main__":
    main()
