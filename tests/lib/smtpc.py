"""The SMTP client engine's test driver (build/smtpc) and the queue it
sends from: a dialmail state directory filled through `dialmail sendmail`."""
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DIALMAIL_BIN", ROOT / "build" / "dialmail")).resolve()
ASAN = "-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"


def smtpc_path():
    """build/smtpc next to the dialmail binary under test (built if missing,
    with the sanitizers when the tree is build-asan)."""
    path = Path(os.environ.get("SMTPC_BIN", BIN.parent / "smtpc"))
    if not path.exists():
        build = os.path.relpath(path.parent, ROOT)
        args = ["make", "-C", str(ROOT), "BUILD=" + build, build + "/smtpc"]
        if "asan" in build:
            args += ["CFLAGS=" + ASAN, "LDFLAGS=-fsanitize=address,undefined"]
        subprocess.run(args, check=True, capture_output=True, timeout=600)
    return str(path)


class Queue:
    """A dialmail state directory filled through the sendmail interface."""

    def __init__(self, tmp):
        self.dir = tmp / "spool"
        self.env = dict(os.environ, DIALMAIL_DIR=str(self.dir))
        self.ids = []

    def add(self, rcpts, body="hello\n", sender="alice@branch.example", subject="test"):
        data = ("Subject: %s\n\n" % subject).encode() + (body if isinstance(body, bytes) else body.encode())
        before = set(self.list_ids())
        r = subprocess.run([str(BIN), "sendmail", "-f", sender, "--", *rcpts], input=data,
                           env=self.env, capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        new = sorted(set(self.list_ids()) - before)
        assert len(new) == 1
        self.ids.append(new[0])
        return new[0]

    def list_ids(self):
        q = self.dir / "queue"
        return [p.name for p in q.iterdir()] if q.exists() else []

    def content(self, qid):
        """The stored content (wire form) of a queued message."""
        raw = (self.dir / "queue" / qid).read_bytes()
        m = re.search(rb"\nsize (\d+)\n", raw)
        start = m.end()
        return raw[start : start + int(m.group(1))]
