"""Queue files written directly in dialmail's documented format
(docs/queue-format.md), for tests and benchmarks that need a large queue
without sending it through SMTP.

    from queuefile import write_queue
    ids = write_queue(state_dir, 5000, rcpt=lambda i: "u%d@d%d.example" % (i, i % 100))
"""
import os
import time
import zlib

SENDER = "a@bench.example"


def queue_id(n, pid=0x4242):
    """Ids in the documented shape, sortable by arrival (µs, pid, seq)."""
    us = 1700000000000000 + n * 1000
    return "%014X%04X%04X" % (us & 0xFFFFFFFFFFFFFF, pid, n & 0xFFFF)


def content(i, size, rcpt):
    """A wire-form message of about size bytes (CRLF line ends)."""
    rcpt = rcpt if isinstance(rcpt, str) else ", ".join(rcpt)
    head = ("From: %s\r\nTo: %s\r\nSubject: queued %d\r\nMessage-Id: <%d@queue.test>\r\n\r\n"
            % (SENDER, rcpt, i, i))
    line = "x" * 78 + "\r\n"
    return (head + line * max(0, (size - len(head)) // len(line))).encode()


def queue_file(qid, rcpt, body, created, sender=SENDER):
    """One queue file image: envelope, content, end record with CRC-32.
    rcpt: one address or a list of them."""
    rcpts = [rcpt] if isinstance(rcpt, str) else list(rcpt)
    env = ("DIALMAIL-QUEUE 1\nid %s\ncreated %d\nsender %s\nclient 127.0.0.1\n"
           "helo client.test\n%ssize %d\n" % (qid, created, sender,
                                               "".join("rcpt %s\n" % r for r in rcpts),
                                               len(body)))
    data = env.encode() + body
    return data + b"\nEND %d %08x\n" % (len(body), zlib.crc32(data) & 0xFFFFFFFF)


def write_queue(state_dir, n, rcpt, size=2048, first=0, sender=SENDER, age=600):
    """Writes n queue files (ids first..first+n-1) under state_dir/queue,
    arrived age seconds ago; rcpt(i) gives each one's recipient (or a list
    of them). Returns the ids."""
    qdir = os.path.join(state_dir, "queue")
    for sub in ("queue", "tmp", "state", "corrupt"):
        os.makedirs(os.path.join(state_dir, sub), mode=0o700, exist_ok=True)
    created = int(time.time()) - age
    ids = []
    for i in range(first, first + n):
        qid = queue_id(i)
        data = queue_file(qid, rcpt(i), content(i, size, rcpt(i)), created, sender)
        fd = os.open(os.path.join(qdir, qid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        ids.append(qid)
    return ids
