"""The SMTP client engine (src/smtp/smtp_client.c) through its test driver
build/smtpc, against the scripted recording server (smtp_recorder.py): the
bytes on the wire, the round trips the client spends, and the per-recipient
results it reports. Messages are queued with the real `dialmail sendmail`.
"""
import json
import re
import subprocess
import time

import pytest


def run_smtpc(smtpc_bin, queue, port, *args, timeout=30):
    r = subprocess.run([smtpc_bin, "--dir", str(queue.dir), *args, "127.0.0.1:%d" % port],
                       capture_output=True, timeout=timeout)
    assert b"runtime error" not in r.stderr and b"Sanitizer" not in r.stderr, r.stderr
    lines = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    assert lines and "session" in lines[-1], (r.stdout, r.stderr)
    return r, lines[:-1], lines[-1]


def by_rcpt(results):
    return {r["rcpt"]: r for r in results}


# ---------------------------------------------------------- round trips

def test_chunking_pipelines_all_messages_in_one_burst(smtpc_bin, queue, recorders):
    """10 messages with CHUNKING + PIPELINING: O(1) waits, not O(N)."""
    delay = 0.3
    rec = recorders(extensions=["PIPELINING", "CHUNKING", "8BITMIME", "SIZE 1000000"], delay=delay)
    for i in range(10):
        queue.add(["bob%d@remote.example" % i, "carol@remote.example"], body="message %d\n.dot\n" % i)
    t0 = time.monotonic()
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert sess["cause"] == "ok" and sess["messages_ok"] == 10
    assert all(x["status"] == "ok" for x in res) and len(res) == 20
    assert rec.wait_closed()
    s = rec.sessions[0]
    # banner -> EHLO, EHLO reply -> everything else (QUIT pipelined too)
    assert s.bursts(delay / 2) <= 4
    assert sess["waits"] <= 4
    assert elapsed < 6 * delay + 2, elapsed
    wire = s.client_bytes()
    assert wire.count(b"MAIL FROM:") == 10 and wire.count(b"\r\nBDAT ") == 10
    assert b"DATA\r\n" not in wire and wire.endswith(b"QUIT\r\n")
    # byte-exact: BDAT carries the stored content unchanged
    got = [m.data for m in s.messages]
    assert got == [queue.content(q) for q in queue.ids]
    assert all(m.mode == "BDAT" and len(m.rcpts) == 2 for m in s.messages)


def test_data_pipelines_next_group_with_the_dot(smtpc_bin, queue, recorders):
    """Without CHUNKING: one wait per message (for 354), the next
    MAIL/RCPT/DATA goes out with the previous message's final dot."""
    delay = 0.25
    n = 5
    rec = recorders(extensions=["PIPELINING", "8BITMIME"], delay=delay)
    for i in range(n):
        queue.add(["bob@remote.example"], body="line\n.leading dot %d\n..two\n" % i)
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    assert sess["cause"] == "ok" and sess["messages_ok"] == n, sess
    assert rec.wait_closed()
    s = rec.sessions[0]
    assert s.bursts(delay / 2) <= n + 3
    assert sess["waits"] <= n + 3
    wire = s.client_bytes()
    assert b"\r\n..leading dot 0\r\n...two\r\n.\r\nMAIL FROM:<alice@branch.example>" in wire
    assert [m.data for m in s.messages] == [queue.content(q) for q in queue.ids]
    assert all(m.mode == "DATA" for m in s.messages)


def test_no_pipelining_waits_for_every_reply(smtpc_bin, queue, recorders):
    delay = 0.1
    rec = recorders(extensions=["CHUNKING"], delay=delay)
    queue.add(["a@remote.example", "b@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    assert sess["cause"] == "ok"
    assert rec.wait_closed()
    # EHLO, MAIL, RCPT, RCPT, BDAT, QUIT: each sent after a reply
    assert rec.sessions[0].bursts(delay / 2) == 6
    assert sess["waits"] == 6


def test_option_no_pipelining_and_no_chunking(smtpc_bin, queue, recorders):
    rec = recorders(extensions=["PIPELINING", "CHUNKING"], delay=0.1)
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--no-pipelining", "--no-chunking")
    assert sess["cause"] == "ok"
    assert rec.wait_closed()
    s = rec.sessions[0]
    assert s.messages[0].mode == "DATA"
    # EHLO, MAIL, RCPT, DATA, data + dot, QUIT
    assert s.bursts(0.05) == 6


# ------------------------------------------------- per-recipient results

@pytest.mark.parametrize("chunking", [True, False])
def test_per_recipient_replies(smtpc_bin, queue, recorders, chunking):
    ext = ["PIPELINING"] + (["CHUNKING"] if chunking else [])
    rec = recorders(extensions=ext, rcpt_replies={
        "busy@remote.example": "450 4.2.1 mailbox busy",
        "nobody@remote.example": "550 5.1.1 no such user"})
    queue.add(["ok@remote.example", "busy@remote.example", "nobody@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    got = by_rcpt(res)
    assert got["ok@remote.example"]["status"] == "ok"
    assert got["ok@remote.example"]["reply"].startswith("250 2.0.0")
    assert got["busy@remote.example"]["status"] == "tempfail"
    assert got["busy@remote.example"]["reply"] == "450 4.2.1 mailbox busy"
    assert got["nobody@remote.example"]["status"] == "permfail"
    assert got["nobody@remote.example"]["reply"] == "550 5.1.1 no such user"
    assert res[0]["message_status"] == "tempfail"
    assert rec.wait_closed()
    assert [m.rcpts for m in rec.sessions[0].messages] == [["ok@remote.example"]]


@pytest.mark.parametrize("chunking", [True, False])
def test_all_recipients_refused_then_next_message(smtpc_bin, queue, recorders, chunking):
    """A message whose RCPTs all fail does not spoil the next one (RSET)."""
    ext = ["PIPELINING"] + (["CHUNKING"] if chunking else [])
    rec = recorders(extensions=ext, rcpt_replies={"x@remote.example": "550 5.1.1 unknown"})
    queue.add(["x@remote.example"])
    queue.add(["y@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    got = by_rcpt(res)
    assert got["x@remote.example"]["status"] == "permfail"
    assert got["x@remote.example"]["reply"] == "550 5.1.1 unknown"
    assert got["y@remote.example"]["status"] == "ok", got
    assert rec.wait_closed()
    s = rec.sessions[0]
    assert [m.rcpts for m in s.messages] == [["y@remote.example"]]
    assert not any(c.startswith("503") for _, d, b in s.log if d == "S" for c in [b.decode()])


def test_mail_refused(smtpc_bin, queue, recorders):
    rec = recorders(extensions=["PIPELINING", "CHUNKING"],
                    mail_replies={"bad@branch.example": "553 5.7.1 sender refused"})
    queue.add(["a@remote.example", "b@remote.example"], sender="bad@branch.example")
    queue.add(["c@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    got = by_rcpt(res)
    for a in ("a@remote.example", "b@remote.example"):
        assert got[a]["status"] == "permfail" and got[a]["reply"] == "553 5.7.1 sender refused"
    assert got["c@remote.example"]["status"] == "ok"


def test_final_reply_refusal(smtpc_bin, queue, recorders):
    rec = recorders(extensions=["PIPELINING", "CHUNKING"],
                    data_replies={1: "554 5.6.0 content rejected", 2: "451 4.3.0 try later"})
    queue.add(["a@remote.example"])
    queue.add(["b@remote.example"])
    queue.add(["c@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    got = by_rcpt(res)
    assert (got["a@remote.example"]["status"], got["a@remote.example"]["reply"]) == \
        ("permfail", "554 5.6.0 content rejected")
    assert (got["b@remote.example"]["status"], got["b@remote.example"]["reply"]) == \
        ("tempfail", "451 4.3.0 try later")
    assert got["c@remote.example"]["status"] == "ok"


# --------------------------------------------------- connection failures

def test_421_mid_session(smtpc_bin, queue, recorders):
    rec = recorders(extensions=["PIPELINING", "CHUNKING"], shutdown_on=("MAIL", 3))
    for i in range(5):
        queue.add(["r%d@remote.example" % i])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    assert r.returncode == 1
    assert sess["cause"] == "server-shutdown"
    assert "421 4.3.2" in sess["text"]
    got = by_rcpt(res)
    assert [got["r%d@remote.example" % i]["status"] for i in range(5)] == \
        ["ok", "ok", "tempfail", "tempfail", "tempfail"]
    assert "421" in got["r2@remote.example"]["reply"]
    assert rec.wait_closed()
    assert len(rec.sessions[0].messages) == 2


@pytest.mark.parametrize("chunking", [True, False])
def test_drop_after_final_dot_keeps_message_queued(smtpc_bin, queue, recorders, chunking):
    ext = ["PIPELINING"] + (["CHUNKING"] if chunking else [])
    rec = recorders(extensions=ext, drop_after_data=2)
    for i in range(3):
        queue.add(["r%d@remote.example" % i])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    assert sess["cause"] == "connection-lost"
    got = by_rcpt(res)
    assert got["r0@remote.example"]["status"] == "ok"
    second = got["r1@remote.example"]
    assert second["status"] == "tempfail" and second["data_sent"] is True
    assert "may have been delivered" in second["reply"]
    assert got["r2@remote.example"]["status"] == "tempfail"
    assert rec.wait_closed()
    assert len(rec.sessions[0].messages) == 2  # the server has it: a duplicate later, never a loss


@pytest.mark.parametrize("chunking", [True, False])
def test_no_reply_to_final_dot_times_out(smtpc_bin, queue, recorders, chunking):
    ext = ["PIPELINING"] + (["CHUNKING"] if chunking else [])
    rec = recorders(extensions=ext, silent_after_data=1)
    queue.add(["a@remote.example"])
    t0 = time.monotonic()
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--timeout", "data_end=700")
    assert 0.6 < time.monotonic() - t0 < 5
    assert sess["cause"] == "timeout"
    assert "end of data" in sess["text"] or "BDAT" in sess["text"]
    assert res[0]["status"] == "tempfail" and "may have been delivered" in res[0]["reply"]
    assert rec.wait_closed(timeout=3), "the client did not close the connection"


def test_tls_required_but_not_offered(smtpc_bin, queue, recorders):
    rec = recorders(extensions=["PIPELINING", "CHUNKING"])
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--tls", "required")
    assert r.returncode == 1
    assert sess["cause"] == "tls-not-offered"
    assert sess["text"] == "TLS required but not offered"
    assert res[0]["status"] == "tempfail" and res[0]["attempted"] is False
    assert rec.wait_closed()
    assert rec.sessions[0].client_bytes() == b"EHLO client.test\r\nQUIT\r\n"


def test_banner_timeout_closes_connection(smtpc_bin, queue, recorders):
    rec = recorders(hold_banner=True)
    queue.add(["a@remote.example"])
    t0 = time.monotonic()
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--timeout", "banner=500")
    assert time.monotonic() - t0 < 5
    assert sess["cause"] == "banner-timeout" and "banner timeout" in sess["text"]
    assert res[0]["status"] == "tempfail"
    assert rec.wait_closed(timeout=3), "the client did not close the connection"
    assert rec.sessions[0].client_bytes() == b""


def test_connect_refused(smtpc_bin, queue, recorders):
    rec = recorders()
    port = rec.port
    rec.stop()
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, port)
    assert sess["cause"] == "connect-failed"
    assert "refused" in sess["text"].lower()
    assert res[0]["status"] == "tempfail"


def test_ehlo_refused_falls_back_to_helo(smtpc_bin, queue, recorders):
    rec = recorders(ehlo_reply="502 5.5.1 EHLO not implemented")
    queue.add(["a@remote.example"], body="caf\xe9\n")
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    assert sess["cause"] == "ok" and res[0]["status"] == "ok"
    assert rec.wait_closed()
    s = rec.sessions[0]
    assert s.commands[:3] == ["EHLO client.test", "HELO client.test", "MAIL FROM:<alice@branch.example>"]
    assert s.messages[0].mode == "DATA"


# ----------------------------------------------------------- SIZE, 8BIT

def test_size_too_big_is_not_sent(smtpc_bin, queue, recorders):
    rec = recorders(extensions=["PIPELINING", "CHUNKING", "SIZE 2000"])
    queue.add(["big@remote.example"], body="x" * 70 + "\n" * 1 + ("y" * 70 + "\n") * 60)
    queue.add(["small@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    got = by_rcpt(res)
    assert got["big@remote.example"]["status"] == "permfail"
    assert "exceeds the server's SIZE limit of 2000" in got["big@remote.example"]["reply"]
    assert got["big@remote.example"]["attempted"] is False
    assert got["small@remote.example"]["status"] == "ok"
    assert rec.wait_closed()
    wire = rec.sessions[0].client_bytes()
    assert wire.count(b"MAIL FROM") == 1 and b"yyyy" not in wire
    assert re.search(rb"MAIL FROM:<alice@branch.example> SIZE=\d+\r\n", wire)


@pytest.mark.parametrize("offered", [True, False])
def test_8bitmime(smtpc_bin, queue, recorders, offered):
    rec = recorders(extensions=["PIPELINING"] + (["8BITMIME"] if offered else []))
    queue.add(["a@remote.example"], body="Gr\xfc\xdfe\n".encode("utf-8"))
    queue.add(["b@remote.example"], body="plain\n")
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port)
    assert all(x["status"] == "ok" for x in res)
    got = by_rcpt(res)
    assert got["a@remote.example"]["eightbit_unannounced"] is (not offered)
    assert rec.wait_closed()
    s = rec.sessions[0]
    mails = [c for c in s.commands if c.startswith("MAIL")]
    assert ("BODY=8BITMIME" in mails[0]) is offered
    assert "BODY=8BITMIME" not in mails[1]
    assert s.messages[0].data == queue.content(queue.ids[0])


def test_max_messages_per_connection(smtpc_bin, queue, recorders):
    rec = recorders(extensions=["PIPELINING", "CHUNKING"])
    for i in range(5):
        queue.add(["r%d@remote.example" % i])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--max-messages", "2")
    got = by_rcpt(res)
    assert [got["r%d@remote.example" % i]["status"] for i in range(5)] == ["ok", "ok"] + ["tempfail"] * 3
    assert got["r4@remote.example"]["attempted"] is False
    assert "maximum messages per connection" in got["r4@remote.example"]["reply"]
    assert rec.wait_closed()
    assert len(rec.sessions[0].messages) == 2


# ----------------------------------------------------------- TLS, AUTH

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA and a server certificate for localhost / 127.0.0.1."""
    d = tmp_path_factory.mktemp("pki")

    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=dialmail test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    fp = subprocess.run(["openssl", "x509", "-in", str(d / "server.pem"), "-noout", "-fingerprint",
                         "-sha256"], check=True, capture_output=True, text=True).stdout
    return {"ca": str(d / "ca.pem"), "cert": str(d / "server.pem"), "key": str(d / "server.key"),
            "fingerprint": fp.strip().split("=", 1)[1]}


def tls_recorder(recorders, pki, ext=("PIPELINING", "CHUNKING", "STARTTLS", "AUTH PLAIN LOGIN"), **kw):
    return recorders(extensions=list(ext), certfile=pki["cert"], keyfile=pki["key"],
                     auth=("branch", "s3cret"), **kw)


def test_starttls_and_auth_plain(smtpc_bin, queue, recorders, pki):
    rec = tls_recorder(recorders, pki)
    queue.add(["a@remote.example"])
    queue.add(["b@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--tls", "required", "--ca", pki["ca"],
                             "--servername", "localhost", "--auth", "branch:s3cret")
    assert sess["cause"] == "ok", sess
    assert sess["tls"] and sess["authenticated"] and sess["tls_info"].startswith("TLSv1")
    assert all(x["status"] == "ok" for x in res)
    assert rec.wait_closed()
    s = rec.sessions[0]
    assert s.tls
    assert s.auth == [("PLAIN", "branch", "s3cret", True, True)]
    assert s.client_bytes(tls=False) == b"EHLO client.test\r\nSTARTTLS\r\n"
    assert s.client_bytes(tls=True).startswith(b"EHLO client.test\r\nAUTH PLAIN ")
    assert [m.data for m in s.messages] == [queue.content(q) for q in queue.ids]


def test_tls_session_is_kept_and_resumed(smtpc_bin, queue, recorders, pki, tmp_path):
    """--tls-session FILE: the first handshake is full and the session the
    server gives is kept in FILE (mode 0600); the next connection resumes it
    (the server sees a reused session, the certificate is still checked); a
    damaged file costs only a full handshake."""
    rec = tls_recorder(recorders, pki)
    kept = tmp_path / "tls" / "peer"
    kept.parent.mkdir(mode=0o700)
    args = ("--tls", "required", "--ca", pki["ca"], "--servername", "localhost",
            "--tls-session", str(kept))
    resumed = []
    for i, damage in enumerate((False, False, True, False)):
        if damage:
            kept.write_bytes(b"\x30\x03garbage")
        queue.add(["r%d@remote.example" % i])
        r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, *args)
        assert sess["cause"] == "ok" and all(x["status"] == "ok" for x in res), sess
        assert rec.wait_closed()
        assert rec.sessions[-1].tls_resumed == sess["tls_resumed"]
        assert ("(resumed)" in sess["tls_info"]) == sess["tls_resumed"], sess
        resumed.append(sess["tls_resumed"])
        assert kept.exists() and kept.stat().st_mode & 0o777 == 0o600
    assert resumed == [False, True, False, True], resumed
    # A pin that does not match fails a resumed session too.
    queue.add(["pin@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, *args, "--fingerprint", "00" * 32)
    assert sess["cause"] == "tls-failed" and "fingerprint" in sess["text"], sess


def first_sides(session):
    """The order in which the two sides first sent: e.g. "CS" (client first)."""
    out = ""
    for _, d, data in session.log:
        if d in ("C", "S") and data and d not in out:
            out += d
    return out


def test_early_ehlo_to_a_dialmail_peer(smtpc_bin, queue, recorders):
    """--early-ehlo: EHLO leaves at connect, before the greeting (which a
    dialmail server sends whatever came in); the session goes on as usual.
    The greeting says whether the peer is a dialmail (what outbound
    remembers). Without the option the client waits for the greeting."""
    rec = recorders(extensions=["PIPELINING", "CHUNKING"], banner_delay=0.5,
                    banner="220 hub.test ESMTP dialmail")
    queue.add(["a@remote.example"])
    for early, order in ((False, "SC"), (True, "CS")):
        r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, *(["--early-ehlo"] if early else []))
        assert sess["cause"] == "ok" and res[0]["status"] == "ok" and sess["peer_dialmail"], sess
        assert rec.wait_closed(len(rec.sessions))
        assert first_sides(rec.sessions[-1]) == order
        assert rec.sessions[-1].client_bytes().startswith(b"EHLO client.test\r\nMAIL FROM:")


def test_early_ehlo_and_a_refused_greeting_sends_no_mail(smtpc_bin, queue, recorders):
    rec = recorders(banner="554 5.7.1 go away")
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--early-ehlo")
    assert sess["cause"] == "greeting-refused" and not sess["peer_dialmail"], sess
    assert res[0]["status"] == "tempfail"
    assert rec.wait_closed()
    assert b"MAIL" not in rec.sessions[0].client_bytes()


def test_auth_login(smtpc_bin, queue, recorders, pki):
    rec = tls_recorder(recorders, pki, ext=("PIPELINING", "STARTTLS", "AUTH LOGIN"))
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--tls", "required", "--ca", pki["ca"],
                             "--servername", "localhost", "--auth", "branch:s3cret")
    assert sess["cause"] == "ok" and res[0]["status"] == "ok"
    assert rec.wait_closed()
    assert rec.sessions[0].auth == [("LOGIN", "branch", "s3cret", True, True)]


def test_auth_failure(smtpc_bin, queue, recorders, pki):
    rec = tls_recorder(recorders, pki)
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--tls", "required", "--ca", pki["ca"],
                             "--servername", "localhost", "--auth", "branch:wrong")
    assert sess["cause"] == "auth-failed" and "535 5.7.8" in sess["text"]
    assert res[0]["status"] == "tempfail"
    assert rec.wait_closed()
    assert b"MAIL" not in rec.sessions[0].client_bytes()


def test_no_auth_in_clear(smtpc_bin, queue, recorders):
    rec = recorders(extensions=["PIPELINING", "AUTH PLAIN LOGIN"], auth=("branch", "s3cret"))
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--tls", "opportunistic",
                             "--auth", "branch:s3cret")
    assert sess["cause"] == "auth-unavailable"
    assert rec.wait_closed()
    assert rec.sessions[0].client_bytes() == b"EHLO client.test\r\nQUIT\r\n"
    assert rec.sessions[0].auth == []


def test_opportunistic_tls_without_verification(smtpc_bin, queue, recorders, pki):
    rec = tls_recorder(recorders, pki)
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--tls", "opportunistic")
    assert sess["cause"] == "ok" and sess["tls"] and res[0]["status"] == "ok"


@pytest.mark.parametrize("args,why", [
    (["--servername", "other.example"], "verification failed"),
    (["--servername", "localhost", "--fingerprint", "00" * 32], "fingerprint"),
])
def test_tls_verification_failures(smtpc_bin, queue, recorders, pki, args, why):
    rec = tls_recorder(recorders, pki)
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--tls", "required", "--ca", pki["ca"], *args)
    assert sess["cause"] == "tls-failed" and why in sess["text"], sess
    assert res[0]["status"] == "tempfail"
    assert rec.wait_closed()
    s = rec.sessions[0]
    assert s.client_bytes(tls=False) == b"EHLO client.test\r\nSTARTTLS\r\n"
    assert s.client_bytes(tls=True) == b""  # nothing after a failed check
    assert s.messages == []


def test_tls_pinned_fingerprint_without_ca(smtpc_bin, queue, recorders, pki):
    rec = tls_recorder(recorders, pki)
    queue.add(["a@remote.example"])
    r, res, sess = run_smtpc(smtpc_bin, queue, rec.port, "--tls", "required",
                             "--fingerprint", pki["fingerprint"])
    assert sess["cause"] == "ok" and sess["tls"] and res[0]["status"] == "ok", sess
