"""XDMBATCH wire form for tests (docs/batch-protocol.md section 4): records
with their CRC-32, compressed by the zstd program (with the shipped
dictionary or none) and cut into segments; and the reading of segments a
peer sends, for scripted servers."""
import hashlib
import struct
import subprocess
import zlib
from pathlib import Path

DICT = Path(__file__).resolve().parents[2] / "src" / "smtp" / "batch_dict" / "mailhdr-1.zdict"
END = b"\0\0\0\0"


def record(kind, payload):
    head = kind.encode() + struct.pack(">I", len(payload))
    return head + payload + struct.pack(">I", zlib.crc32(head + payload))


def message_records(tid, sender, rcpts, content, offset=0, chunk=16384):
    env = "%s %d %d\r\nF <%s>\r\n" % (tid, len(content), offset, sender)
    env += "".join("R <%s>\r\n" % r for r in rcpts)
    out = record("M", env.encode())
    for off in range(offset, len(content), chunk):
        out += record("D", content[off:off + chunk])
    digest = hashlib.sha256(content).hexdigest()[:32]
    return out + record("E", ("%s %s" % (tid, digest)).encode())


def segments(raw, dictionary=True, end=True):
    """raw records -> one zstd frame cut into segments (+ the end segment)."""
    cmd = ["zstd", "-q", "-c", "-19", "--zstd=windowLog=20", "--no-check"] + (["-D", str(DICT)] if dictionary else [])
    z = subprocess.run(cmd, input=raw, stdout=subprocess.PIPE, check=True).stdout
    out = b"".join(struct.pack(">I", len(z[i:i + 65536])) + z[i:i + 65536]
                   for i in range(0, len(z), 65536))
    return out + (END if end else b"")


def read_segments(recv):
    """Reads segments with recv(n) (exactly n bytes) up to the end segment;
    returns the compressed bytes."""
    data = b""
    while True:
        n = struct.unpack(">I", recv(4))[0]
        if n == 0:
            return data
        data += recv(n)
