# retrieve = turn (RFC 821 TURN) on the branch: a scripted provider accepts
# (250, then it delivers a held message as the SMTP client on the same
# connection) or refuses (502); and the setting is refused without
# turn_enabled = yes. Invariant: every thread is joined, every wait bounded.
import socket
import threading

from dialup import dial, ledger
from ports import free_port

BODY = b"Subject: held for the branch\r\n\r\nheld body\r\n..leading dot\r\n"


class Provider:
    """One connection: banner, EHLO, TURN -> turn_reply; on 250 it becomes
    the client and delivers BODY to bob@branch.example. ehlo: its EHLO
    reply's keywords."""

    def __init__(self, turn_reply, ehlo=("TURN",)):
        self.turn_reply = turn_reply
        self.ehlo = ehlo
        self.ehlo_after = []  # the branch's EHLO reply after the reversal
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.got = []      # commands the branch sent before the reversal
        self.replies = []  # the branch's replies after it
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            c, _ = self.sock.accept()
            with c:
                c.settimeout(15)
                self.serve(c, c.makefile("rb"))
        except Exception as e:  # reported by the test
            self.error = repr(e)
        finally:
            self.sock.close()

    def reply(self, f):
        """A whole reply of the branch: (code, [lines])."""
        lines = []
        while True:
            ln = f.readline()
            if not ln:
                raise EOFError("branch closed")
            lines.append(ln.decode().rstrip("\r\n"))
            if len(ln) < 4 or ln[3:4] != b"-":
                self.replies.append(lines[-1])
                return int(lines[-1][:3]), lines

    def serve(self, c, f):
        c.sendall(b"220 provider.example ESMTP\r\n")
        while True:
            cmd = f.readline().decode().rstrip("\r\n")
            if not cmd:
                return
            self.got.append(cmd)
            verb = cmd.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                c.sendall(b"".join(b"250-%s\r\n" % k.encode() for k in ("provider.example",)
                                   + tuple(self.ehlo[:-1])) + b"250 %s\r\n" % self.ehlo[-1].encode())
            elif verb == "TURN":
                c.sendall(self.turn_reply.encode() + b"\r\n")
                if self.turn_reply.startswith("250"):
                    return self.deliver(c, f)
            elif verb == "QUIT":
                c.sendall(b"221 bye\r\n")
                return
            else:
                c.sendall(b"500 what\r\n")

    def deliver(self, c, f):
        assert self.reply(f)[0] == 220
        for cmd, want in ((b"EHLO provider.example", 250),
                          (b"MAIL FROM:<s@sender.example>", 250),
                          (b"RCPT TO:<bob@branch.example>", 250), (b"DATA", 354)):
            c.sendall(cmd + b"\r\n")
            code, lines = self.reply(f)
            assert code == want, (cmd, lines)
            if cmd.startswith(b"EHLO"):
                self.ehlo_after = lines
        c.sendall(BODY + b".\r\n")
        assert self.reply(f)[0] == 250
        c.sendall(b"QUIT\r\n")
        assert self.reply(f)[0] == 221

    def join(self):
        self.thread.join(30)
        assert not self.thread.is_alive()


def branch(daemon, provider, enabled=True):
    return daemon("hostname = gw.branch.example", "local_domains = branch.example",
                  "local_recipients = bob", "queue_run_interval = 1s",
                  "turn_enabled = %s" % ("yes" if enabled else "no"),
                  "[routes]", "provider.example = smarthost 127.0.0.1:%d via=lan" % provider.port,
                  "[phonebook lan]", "type = always",
                  "[session]", "retrieve = turn", "idle_timeout = 1s",
                  "retrieve_timeout = 10s")


def test_turn_reverses_and_delivers(daemon):
    p = Provider("250 OK")
    br = branch(daemon, p)
    r = dial(br)
    p.join()
    assert r.returncode == 0, r.stdout + r.stderr
    assert p.error is None, (p.error, p.got, p.replies)
    assert p.got[0] == "EHLO gw.branch.example" and p.got[1] == "TURN", p.got
    files = br.maildir_files("bob")
    assert len(files) == 1, (r.stdout, br.events())
    assert files[0].read_bytes().endswith(
        BODY.replace(b"\r\n..", b"\r\n.").replace(b"\r\n", b"\n"))
    turn = br.events_with(4125)
    assert turn and all(e["severity"] == "warning" for e in turn), turn
    used = [e for e in turn if e["code"] == "250"]
    assert used and "insecure" in used[0]["text"], turn
    assert any(e["code"] == "221" for e in turn), turn
    assert "provider sent QUIT" in br.events_with(4123)[0]["text"]
    assert ledger(br)[0]["result"] == "ok"


def test_xdmbatch_only_for_a_dialmail_provider(daemon, tmp_path):
    """After the turn the branch is the server: it lists XDMBATCH only to a
    provider that listed it in its own EHLO reply before (a dialmail hub),
    never to another MTA (docs/batch-protocol.md section 1)."""
    for ehlo, offered in ((("TURN",), False), (("XDMBATCH 1 DICT=1", "TURN"), True)):
        p = Provider("250 OK", ehlo=ehlo)
        sub = tmp_path / str(offered)
        sub.mkdir()
        br = daemon("hostname = gw.branch.example", "local_domains = branch.example",
                    "local_recipients = bob", "queue_run_interval = 1s", "turn_enabled = yes",
                    "[routes]", "provider.example = smarthost 127.0.0.1:%d via=lan" % p.port,
                    "[phonebook lan]", "type = always",
                    "[session]", "retrieve = turn", "idle_timeout = 1s", "retrieve_timeout = 10s")
        r = dial(br)
        p.join()
        assert r.returncode == 0 and p.error is None, (r.stdout, p.error, p.got)
        assert p.ehlo_after and p.ehlo_after[0].startswith("250"), p.ehlo_after
        listed = [l for l in p.ehlo_after if "XDMBATCH" in l]
        assert bool(listed) == offered, p.ehlo_after
        assert len(br.maildir_files("bob")) == 1


def test_turn_refused(daemon):
    p = Provider("502 5.5.1 TURN not implemented")
    br = branch(daemon, p)
    dial(br)
    p.join()
    assert p.error is None, p.error
    assert p.got[-1] == "QUIT", p.got
    ev = br.wait_event(4125, 5)
    assert ev and ev[0]["code"] == "502" and "TURN not implemented" in ev[0]["text"], ev
    failed = br.wait_event(4121, 5)
    assert failed and "502" in failed[0]["text"], br.events()
    assert br.maildir_files("bob") == []


def test_turn_needs_turn_enabled(run_cli, tmp_path):
    cfg = tmp_path / "turn.conf"
    cfg.write_text("[phonebook lan]\ntype = always\n[session]\nretrieve = turn\n")
    r = run_cli("check-config", "--config", str(cfg))
    out = r.stdout + r.stderr
    assert r.returncode == 78, out
    assert "retrieve = turn needs turn_enabled = yes" in out and "insecure" in out, out
    assert "retrieve = atrn" in out, out
    cfg.write_text("turn_enabled = yes\n[phonebook lan]\ntype = always\n"
                   "[session]\nretrieve = turn\n")
    r = run_cli("check-config", "--config", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
