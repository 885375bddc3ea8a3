# check-config and show-config, and the daemon refusing a bad file: errors
# name FILE:LINE and the setting, exit status 78 (EX_CONFIG).
import os
import re

import pytest

SETTINGS = ["listen", "hostname", "local_domains", "local_recipients", "mynetworks",
            "max_message_size", "max_recipients", "max_connections", "smtp_timeout",
            "smtp_data_timeout", "min_free_space", "queue_run_interval", "postmaster",
            "syslog", "diag_initialization", "diag_smtp", "diag_transfer", "diag_queue",
            "diag_delivery", "diag_dialup", "diag_security"]

GOOD = """# a complete, valid file
listen = 127.0.0.1:2599, [::1]:2599
hostname = mx.test.example
local_domains = example.org, example.net
local_recipients = alice, bob
mynetworks = 127.0.0.0/8, 192.0.2.0/24, ::1/128
max_message_size = 20M
max_recipients = 50
max_connections = 20
smtp_timeout = 5m
smtp_data_timeout = 10m
min_free_space = 1M
queue_run_interval = 30s
postmaster = alice
syslog = no
diag_smtp = maximum
diag_security = none

[aliases]
sales = alice, bob
"""


def write(tmp_path, text, name="test.conf"):
    p = tmp_path / name
    p.write_text(text)
    return p


def output(r):
    return r.stdout + r.stderr


def test_good_file_passes(run_cli, tmp_path):
    p = write(tmp_path, GOOD)
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 0, output(r)


@pytest.mark.parametrize("line,name", [
    ("max_recipients = lots", "max_recipients"),
    ("max_recipients = -1", "max_recipients"),
    ("max_connections = 99999999999999999999", "max_connections"),
    ("max_message_size = 10Q", "max_message_size"),
    ("smtp_timeout = soon", "smtp_timeout"),
    ("mynetworks = 10.0.0.0/33", "mynetworks"),
    ("mynetworks = 300.1.2.3/8", "mynetworks"),
    ("syslog = perhaps", "syslog"),
    ("diag_smtp = loud", "diag_smtp"),
    ("listen = 127.0.0.1:notaport", "listen"),
])
def test_bad_value_names_file_line_and_setting(run_cli, tmp_path, line, name):
    p = write(tmp_path, "# comment\n\n" + line + "\nmax_recipients = 5\n")
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 78, (line, r.returncode, output(r))
    assert "%s:3" % p in output(r), output(r)
    assert name in output(r)


def test_unknown_setting_is_an_error(run_cli, tmp_path):
    p = write(tmp_path, "hostname = mx.test.example\nfrobnicate = yes\n")
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 78, output(r)
    assert "%s:2" % p in output(r)
    assert "frobnicate" in output(r)


def test_line_without_equals_is_an_error(run_cli, tmp_path):
    p = write(tmp_path, "hostname = mx.test.example\n\n\njust some words\n")
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 78
    assert "%s:4" % p in output(r), output(r)


def test_every_error_is_reported(run_cli, tmp_path):
    p = write(tmp_path, "max_recipients = x\nbogus = 1\nsmtp_timeout = y\n")
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 78
    for n, name in ((1, "max_recipients"), (2, "bogus"), (3, "smtp_timeout")):
        assert re.search(r"%s:%d\b.*%s" % (re.escape(str(p)), n, name), output(r)), output(r)


def test_missing_file_is_an_error(run_cli, tmp_path):
    r = run_cli("check-config", "--config", str(tmp_path / "nope.conf"))
    assert r.returncode == 78
    assert "nope.conf" in output(r)


def test_daemon_refuses_a_bad_file(run_cli, tmp_path):
    p = write(tmp_path, "listen = 127.0.0.1:2599\nmax_recipients = lots\n")
    r = run_cli("daemon", "--dir", str(tmp_path / "spool"), "--config", str(p), timeout=20)
    assert r.returncode == 78
    assert "%s:2" % p in output(r) and "max_recipients" in output(r)


def settings_of(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_][a-z0-9_]*) = ?(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_show_config_defaults_without_a_file(run_cli):
    r = run_cli("show-config")
    assert r.returncode == 0, output(r)
    assert re.search(r"(?m)^listen = 127\.0\.0\.1:2525$", r.stdout), r.stdout
    s = settings_of(r.stdout)
    missing = [n for n in SETTINGS if n not in s]
    assert missing == [], r.stdout
    assert s["max_recipients"] == "100" and s["max_connections"] == "100"
    assert "localhost" in s["local_domains"]
    assert "127.0.0.0/8" in s["mynetworks"] and "::1/128" in s["mynetworks"]


def test_show_config_shows_file_values(run_cli, tmp_path):
    p = write(tmp_path, GOOD)
    s = settings_of(run_cli("show-config", "--config", str(p)).stdout)
    assert s["max_recipients"] == "50"
    assert s["hostname"] == "mx.test.example"
    assert "192.0.2.0/24" in s["mynetworks"]
    assert s["diag_smtp"] == "maximum"


def test_show_config_n_lists_only_changed(run_cli, tmp_path):
    r = run_cli("show-config", "-n")
    assert r.returncode == 0
    assert settings_of(r.stdout) == {}, r.stdout
    p = write(tmp_path, "max_recipients = 7\nhostname = mx.test.example\n")
    r = run_cli("show-config", "-n", "--config", str(p))
    assert r.returncode == 0, output(r)
    assert settings_of(r.stdout) == {"max_recipients": "7", "hostname": "mx.test.example"}


def test_show_config_output_is_a_valid_config(run_cli, tmp_path):
    for args in ([], ["--config", str(write(tmp_path, GOOD, "good.conf"))]):
        text = run_cli("show-config", *args).stdout
        p = write(tmp_path, text, "roundtrip.conf")
        r = run_cli("check-config", "--config", str(p))
        assert r.returncode == 0, (args, output(r), text)
        again = run_cli("show-config", "--config", str(p)).stdout
        assert settings_of(again) == settings_of(text)


def test_version_and_unknown_command(run_cli):
    r = run_cli("version")
    assert r.returncode == 0 and re.match(r"dialmail \d+\.\d+\.\d+", r.stdout)
    r = run_cli("no-such-command")
    assert r.returncode == 64 and "no-such-command" in r.stderr


def tls_conf(tmp_path, pki, mode, *extra):
    """A file with the pki certificate and key, the key at mode."""
    os.chmod(pki["key"], mode)
    return write(tmp_path, "tls_cert_file = %s\ntls_key_file = %s\n%s" % (
        pki["cert"], pki["key"], "".join(e + "\n" for e in extra)))


def test_private_key_readable_by_others_refused(run_cli, tmp_path, pki):
    p = tls_conf(tmp_path, pki, 0o644)
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 78, output(r)
    assert ("%s:2: %s: tls_key_file: group or others may access it (mode 0644); it holds a "
            "private key: chmod 600 it, owned by the daemon's user, or set "
            "allow_insecure_key_file = yes\n" % (p, pki["key"])) in r.stderr, output(r)
    p = tls_conf(tmp_path, pki, 0o600)
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 0 and "warning" not in output(r), output(r)


def test_allow_insecure_key_file_warns_and_loads(run_cli, tmp_path, pki):
    p = tls_conf(tmp_path, pki, 0o640, "allow_insecure_key_file = yes")
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 0, output(r)
    assert r.stdout == "%s: ok\n" % p
    assert r.stderr == ("warning: %s:2: %s: tls_key_file: group or others may access it "
                        "(mode 0640); it holds a private key: allowed by "
                        "allow_insecure_key_file = yes, but chmod 600 it\n" % (p, pki["key"]))


# "secret" hashed by dialmail hash-password --sha512
SECRET_HASH = ("$6$cNPdlnn6tsDEC/kx$I7Q2wY3Ro804nzO1D5MrLNqPbxywBQtven5LfHftXBwDsdimQzG3lF5d6"
               "feRlmNmvP1jRUE3K4n3EBdgRCo3a/")


@pytest.mark.parametrize("setting,text", [("auth_file", "isp user secret\n"),
                                          ("auth_users_file", "alice " + SECRET_HASH + "\n")])
def test_password_files_readable_by_others(run_cli, tmp_path, setting, text):
    secret = tmp_path / "secret"
    secret.write_text(text)
    secret.chmod(0o604)
    conf = "hostname = a.example\nauth_allow_plaintext = yes\n%s = secret\n" % setting
    p = write(tmp_path, conf)
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 78, output(r)
    assert r.stderr.startswith("%s:3: %s: %s: group or others may access it (mode 0604)"
                               % (p, secret, setting)), output(r)
    assert "allow_insecure_key_file = yes" in r.stderr
    p = write(tmp_path, conf + "allow_insecure_key_file = yes\n")
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 0, output(r)
    assert r.stderr.startswith("warning: %s:3: %s: %s: group or others may access it "
                               "(mode 0604)" % (p, secret, setting)), output(r)
    secret.chmod(0o600)
    p = write(tmp_path, conf)
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 0 and r.stderr == "", output(r)


def test_referenced_file_error_names_config_line_first(run_cli, tmp_path):
    p = write(tmp_path, "# credentials\nhostname = a.example\nauth_file = nope\n")
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 78, output(r)
    first = r.stderr.splitlines()[0]
    assert first == "%s:3: %s: auth_file: cannot open: No such file or directory" % (
        p, tmp_path / "nope"), output(r)


def test_control_bytes_echoed_escaped(run_cli, tmp_path):
    p = tmp_path / "esc.conf"
    p.write_bytes(b"hostname = evil\x1b[2Jhost\nauth_file = a\x1b]0;x\x07\n")
    r = run_cli("check-config", "--config", str(p))
    assert r.returncode == 78, output(r)
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr, repr(r.stderr)
    assert "%s:1: hostname: 'evil\\x1b[2Jhost' is not a valid host name" % p in r.stderr
    assert "%s:2: %s/a\\x1b]0;x\\x07: auth_file: cannot open" % (p, tmp_path) in r.stderr
