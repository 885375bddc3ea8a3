"""A tiny Hayes modem on a pty, for the dialer tests while build/modemsim is
not there: the same options as modemsim for what test_dialer.py needs
(--link, --script, --wedge-after, --silent, --garbage). Each ATD takes the
next --script item (BUSY, NO CARRIER, NO DIALTONE, NO ANSWER, ERROR, CONNECT,
CONNECT 33600); when the script is used up, calls connect. Closing the line
(every slave fd) is the DTR drop: it hangs up and unwedges."""
import argparse
import errno
import os
import pty
import select
import sys
import time
import tty


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--link", required=True)
    ap.add_argument("--script", default="")
    ap.add_argument("--wedge-after", type=int, default=0)
    ap.add_argument("--silent", action="store_true")
    ap.add_argument("--garbage", action="store_true")
    ap.add_argument("--bps", type=int, default=33600)
    a = ap.parse_args()
    script = [s.strip() for s in a.script.split(",") if s.strip()]
    master, slave = pty.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    os.close(slave)
    try:
        os.unlink(a.link)
    except FileNotFoundError:
        pass
    os.symlink(name, a.link)
    print(name, flush=True)
    calls = 0
    wedged = False
    online = False
    line = b""
    while True:
        r, _, _ = select.select([master], [], [], 0.5)
        if not r:
            continue
        try:
            data = os.read(master, 1024)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            # nobody has the line open: DTR drop
            if online or wedged:
                sys.stderr.write("fakemodem: line closed, hang up\n")
            online = False
            wedged = False
            line = b""
            time.sleep(0.02)
            continue
        if online or a.silent or wedged:
            continue
        line += data
        while b"\r" in line:
            cmd, line = line.split(b"\r", 1)
            cmd = cmd.strip().decode("ascii", "replace").upper()
            if not cmd:
                continue
            if a.garbage:
                os.write(master, b"\r\n\x81\xfe\x00\x13garb\x07\x99\x98\x97\x96\x95\x94\x93\x92\x91\r\n")
                continue
            if cmd.startswith("ATD"):
                calls += 1
                res = script.pop(0) if script else "CONNECT"
                if res == "CONNECT":
                    res = "CONNECT %d" % a.bps
                os.write(master, ("\r\n%s\r\n" % res).encode())
                if res.startswith("CONNECT"):
                    online = True
                if a.wedge_after and calls == a.wedge_after:
                    wedged = True  # after N calls: deaf until the line is closed
                    sys.stderr.write("fakemodem: wedged\n")
                    break
                continue
            if cmd.startswith("AT"):
                os.write(master, b"\r\nOK\r\n")
            else:
                os.write(master, b"\r\nERROR\r\n")


if __name__ == "__main__":
    main()
