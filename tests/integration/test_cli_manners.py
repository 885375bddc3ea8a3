# CLI manners (issue 10, item 8): every subcommand answers --help on stdout
# with status 0; a spool directory that does not exist is an error, not an
# empty queue; status has a --json form.
import json

import pytest

COMMANDS = ["daemon", "queue", "events", "check-config", "show-config", "sendmail", "mailq",
            "dial", "status", "sessions", "flush"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_answers_help(run_cli, command):
    r = run_cli(command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: "), r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("name", ["sendmail", "mailq"])
def test_sendmail_and_mailq_by_their_names_answer_help(dialmail_bin, name):
    import subprocess
    link = dialmail_bin.parent / name
    if not link.exists():
        pytest.skip("no %s link next to %s" % (name, dialmail_bin))
    r = subprocess.run([str(link), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: %s" % name), r.stdout


def test_queue_on_a_missing_spool_is_an_error(run_cli, tmp_path):
    missing = tmp_path / "nonexistent"
    r = run_cli("queue", "--dir", str(missing))
    assert r.returncode == 66, (r.returncode, r.stdout)
    assert str(missing) in r.stderr and "No such file or directory" in r.stderr
    assert "Queue is empty" not in r.stdout
    afile = tmp_path / "plain-file"
    afile.write_text("x")
    r = run_cli("queue", "--dir", str(afile))
    assert r.returncode == 66 and "not a directory" in r.stderr


def test_status_json(daemon, run_cli, tmp_path):
    d = daemon()
    r = run_cli("status", "--dir", str(d.dir), "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["daemon"] == "running"
    assert st["link"].startswith("idle") or st["link"], st
    assert st["queue"].startswith("0 messages"), st
    assert "next_slot" in st and "schedule" in st
    r = run_cli("status", "--dir", str(tmp_path / "nowhere"), "--json")
    assert r.returncode == 69
    assert json.loads(r.stdout) == {"daemon": "not running"}


def test_port_in_use_is_said_on_stderr(daemon, dialmail_bin, tmp_path):
    import socket
    import subprocess
    from ports import free_port
    port = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    try:
        cfg = tmp_path / "busy.conf"
        cfg.write_text("listen = 127.0.0.1:%d\nsyslog = no\nrun_as_root = yes\n" % port)
        r = subprocess.run([str(dialmail_bin), "daemon", "--dir", str(tmp_path / "spool"),
                            "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    finally:
        holder.close()
    assert r.returncode == 71, r.stderr
    assert "cannot listen on 127.0.0.1:%d: Address already in use" % port in r.stderr
