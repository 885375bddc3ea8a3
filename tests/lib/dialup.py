"""Dial-up sessions for the tests: `dialmail dial`, the session ledger
(DIR/log/sessions.jsonl), and Rig: modemsims whose gateway port leads to an
SMTP recorder while a call is up, with the config lines for them."""
import json
import os
import subprocess
from pathlib import Path

from modem import ModemSim
from ports import free_port
from smtp_recorder import Recorder

REPO = Path(__file__).resolve().parents[2]
MODEMSIM = Path(os.environ.get("MODEMSIM_BIN", REPO / "build" / "modemsim"))


class Rig:
    """Modems under tmp, the smarthost recorder behind their gateway ports,
    and config lines for them; stop() stops them all."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.lock = tmp / "lock"
        self.lock.mkdir()
        self.modems = []
        self.rec = Recorder(extensions=("PIPELINING", "8BITMIME"))
        self.rec_port = self.rec.start()

    def modem(self, name, *args, gateway=True):
        """A modemsim on tmp/NAME; with gateway, its --gateway-port leads to
        the recorder while a call is up. Returns (link path, gateway port)."""
        port = free_port() if gateway else None
        extra = ["--gateway-port", str(port), "--connect", "127.0.0.1:%d" % self.rec_port] \
            if gateway else []
        m = ModemSim(MODEMSIM, self.tmp / name, *args, *extra)
        self.modems.append(m)
        m.start()
        return m.link, port

    def stop(self):
        for m in self.modems:
            m.stop()
        self.rec.stop()

    def entry(self, name, link, numbers="5551234", **kw):
        fields = {"device": str(link), "numbers": numbers, "redial_interval": "200ms",
                  "at_timeout": "1s", "dial_timeout": "5s"}
        fields.update(kw)
        return ["[phonebook %s]" % name] + ["%s = %s" % kv for kv in fields.items()]

    def config(self, entries, session=(), routes=(), main=()):
        lines = ["lock_dir = %s" % self.lock, "queue_run_interval = 1s"] + list(main)
        if routes:
            lines += ["[routes]"] + list(routes)
        lines += entries
        given = {ln.split("=")[0].strip() for ln in session}
        defaults = [ln for ln in ("idle_timeout = 1s", "check_timeout = 3s")
                    if ln.split("=")[0].strip() not in given]
        lines += ["[session]"] + defaults + list(session)
        return lines


def dial(d, *args, timeout=60):
    return subprocess.run([d.bin, "dial", *args, "--dir", str(d.dir)], capture_output=True,
                          text=True, timeout=timeout)


def ledger_at(dir):
    """The sessions in the ledger of the state directory dir."""
    path = Path(dir) / "log" / "sessions.jsonl"
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def ledger(d):
    """The sessions in the ledger of daemon d."""
    return ledger_at(d.dir)
