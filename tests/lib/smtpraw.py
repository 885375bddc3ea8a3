"""A raw-socket SMTP client for the tests: sends exact bytes, parses the
replies; and the small messages the tests send with it."""
import re
import socket
import time

CRLF = b"\r\n"


class Reply:
    """One SMTP reply: code, the text of each line, and the raw bytes."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%d, %r)" % (self.code, self.lines)


class SmtpRaw:
    """A raw-socket SMTP client: sends exact bytes, parses replies."""

    def __init__(self, port, timeout=10.0, banner=True, source=None):
        """source: the local address to connect from (127.0.0.2 is another
        client than 127.0.0.1 to the server)."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False
        self.banner = self.reply() if banner else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else max(timeout, 0.01))
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return chunk

    def _line(self, timeout=None):
        for _ in range(10000):
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 1], self.buf[i + 1 :]
                return line
            if self.eof or not self._fill(timeout):
                raise EOFError("connection closed; partial %r" % self.buf)
        raise AssertionError("reply line too long")

    def reply(self, timeout=None):
        """Reads one (possibly multi-line) reply."""
        lines, raw = [], b""
        for _ in range(1000):
            line = self._line(timeout)
            raw += line
            assert line.endswith(CRLF), "reply line without CRLF: %r" % line
            m = re.match(rb"^(\d{3})([ -])(.*)\r\n$", line, re.S)
            assert m, "malformed reply line %r" % line
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(int(m.group(1)), lines, raw)
        raise AssertionError("reply with too many lines")

    def cmd(self, line, timeout=None):
        self.send(line.encode() + CRLF if isinstance(line, str) else line + CRLF)
        return self.reply(timeout)

    def replies_until_close(self, timeout=5.0, limit=100):
        """All replies until the server closes (or timeout: AssertionError)."""
        out = []
        deadline = time.monotonic() + timeout
        for _ in range(limit):
            left = deadline - time.monotonic()
            assert left > 0, "server did not close; replies so far %r" % out
            try:
                out.append(self.reply(timeout=left))
            except EOFError:
                return out
            except socket.timeout:
                raise AssertionError("server did not close; replies so far %r" % out)
        return out

    def closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (any
        pending bytes are discarded)."""
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                if not self._fill(left):
                    return True
            except socket.timeout:
                return False
            except OSError:
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_message(port, sender, rcpts, data, helo="client.test"):
    """Sends one message with raw bytes (data without the final dot line,
    already in wire form). Returns the reply to the end of DATA (or the
    first refusal)."""
    with SmtpRaw(port) as c:
        r = c.cmd("EHLO " + helo)
        assert r.code == 250, r
        r = c.cmd("MAIL FROM:<%s>" % sender)
        if r.code != 250:
            return r
        for rcpt in rcpts:
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            if r.code != 250:
                return r
        r = c.cmd("DATA")
        if r.code != 354:
            return r
        if not data.endswith(CRLF):
            data += CRLF
        c.send(data + b".\r\n")
        r = c.reply()
        c.send(b"QUIT\r\n")
        return r


def queued_id(reply):
    """The queue id from a '250 ... queued as ID' reply."""
    m = re.search(r"queued as ([0-9A-Za-z._-]+)", reply.text if isinstance(reply, Reply) else reply)
    assert m, "no 'queued as ID' in %r" % reply
    return m.group(1)


def message(subject="test", body="hello", headers=(), msgid=True):
    """A small wire-form message."""
    lines = ["From: sender@client.test", "To: someone@example.org", "Subject: " + subject]
    if msgid:
        lines.append("Message-ID: <%s.%d@client.test>" % (subject.replace(" ", "-"), time.time_ns()))
    lines += list(headers)
    lines += ["", body]
    return ("\r\n".join(lines) + "\r\n").encode()


def banner_latency(port, timeout=30.0):
    """Seconds from connect() to a complete 220 line; None if none came.
    Probed every 100 ms, its largest value is the largest SMTP stall."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            data = b""
            while b"\n" not in data:
                chunk = s.recv(512)
                if not chunk:
                    return None
                data += chunk
            dt = time.monotonic() - t0
            s.sendall(b"QUIT\r\n")
            return dt if data.startswith(b"220") else None
    except OSError:
        return None
