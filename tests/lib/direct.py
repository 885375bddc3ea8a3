"""data = direct for the tests: a dialmail branch whose phone book entry
speaks SMTP over the modem line to a hub's ODMR port, and one call that
carries mail both ways."""
from dialup import dial
from odmr import PASSWORD, USER
from smtpraw import message, send_message
from wait import wait_until


def branch(daemon, tmp_path, link, *session, top=()):
    """A branch whose entry hubline is data = direct; session: more [session]
    lines, top: more global ones."""
    lock = tmp_path / "lock"
    lock.mkdir(exist_ok=True)
    auth = tmp_path / "branch-auth"
    auth.write_text("hub %s %s\n" % (USER, PASSWORD))
    auth.chmod(0o600)
    return daemon("hostname = gw.branch.example", "local_domains = branch.example",
                  "local_recipients = bob", "queue_run_interval = 1s",
                  "auth_file = %s" % auth, "lock_dir = %s" % lock, *top,
                  "[routes]", "* = smarthost 127.0.0.1:25 via=hubline",
                  "[phonebook hubline]", "type = modem", "device = %s" % link,
                  "numbers = 5551234", "data = direct", "redial_interval = 200ms",
                  "at_timeout = 1s", "dial_timeout = 5s",
                  "[session]", "retrieve = atrn", "atrn_domains = branch.example",
                  "atrn_auth = hub", "idle_timeout = 1s", "check_timeout = 3s",
                  "retrieve_timeout = 10s", *session)


def maildir_has(files, body):
    want = body.replace(b"\r\n", b"\n")
    return sum(f.read_bytes().endswith(want) for f in files)


def partial_files(d):
    """The partial files of unfinished XDMBATCH messages at daemon d (under
    DIR/batch/<peer>/, whatever the peer's name; not the done markers in
    DIR/batch/<peer>/done/)."""
    top = d.dir / "batch"
    return [p for p in top.glob("*/*") if p.is_file()] if top.exists() else []


def exchange(daemon, tmp_path, h, link, *session):
    """Two messages held for bob at hub h, one outbound message queued at a
    new branch dialling the modem on link, one call: both directions
    arrive byte-exact. Returns (branch, dial result, the outbound message as
    the hub queued it). other.example mail stays held at the hub
    (hold_domains), so it can be found there after it crossed the line."""
    held = [message("held %d" % i, body="held secret %d\r\n..leading dot" % i) for i in range(2)]
    for b in held:
        assert send_message(h.port, "s@sender.example", ["bob@branch.example"], b).code == 250
    before = set(h.queue_ids())
    br = branch(daemon, tmp_path, link, *session)
    out = message("from the branch", body="outbound secret\r\n..dot")
    assert send_message(br.port, "alice@branch.example", ["remote@other.example"],
                        out).code == 250
    r = dial(br)
    assert r.returncode == 0, r.stdout + r.stderr
    # Held mail arrived in the branch's Maildir, byte-exact.
    assert wait_until(lambda: len(br.maildir_files("bob")) == 2, 10), (r.stdout, br.events())
    files = br.maildir_files("bob")
    for b in held:
        assert maildir_has(files, b.replace(b"\r\n..", b"\r\n.")) == 1, b
    # Outbound mail went over the line and is queued at the hub.
    assert br.queue_ids() == [], br.events()
    new = [q for q in h.queue_ids() if q not in before]
    assert len(new) == 1, (h.queue_ids(), before)
    data = (h.dir / "queue" / new[0]).read_bytes()
    assert out.replace(b"\r\n..", b"\r\n.") in data, data
    assert b"remote@other.example" in data
    # The held mail left the hub.
    assert wait_until(lambda: h.queue_ids() == new, 5), h.queue_ids()
    return br, r, data
