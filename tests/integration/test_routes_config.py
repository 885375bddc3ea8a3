# The [routes] section and auth_file as an operator meets them: check-config
# accepts a good table, refuses mistakes naming FILE:LINE, refuses an
# auth_file others can read, and show-config prints the table without secrets.
import os

ROUTES = """local_domains = branch.example
auth_file = auth
transfer_mode = both
retry_intervals = 10m, 1h

[routes]
* = smarthost mail.isp.example:587 tls=required auth=branch
partner.example = mx
.partner.example = mx port=2525
branch.example = local
held.example = hold
"""


def write(tmp_path, name, text, mode=0o600):
    p = tmp_path / name
    p.write_text(text)
    os.chmod(p, mode)
    return p


def test_good_routes_pass_and_show_without_password(tmp_path, run_cli):
    write(tmp_path, "auth", "branch branch-user Secret-Pw 1\n")
    conf = write(tmp_path, "d.conf", ROUTES, 0o644)
    r = run_cli("check-config", "--config", str(conf))
    assert r.returncode == 0, r.stderr
    r = run_cli("show-config", "--config", str(conf), "-n")
    assert r.returncode == 0, r.stderr
    assert "retry_intervals = 10m, 1h\n" in r.stdout
    assert ("\n[routes]\n* = smarthost mail.isp.example:587 tls=required auth=branch\n"
            "partner.example = mx tls=opportunistic\n") in r.stdout
    assert "Secret-Pw" not in r.stdout and "branch-user" not in r.stdout
    # the listing is itself a valid file
    again = write(tmp_path, "again.conf", r.stdout, 0o644)
    assert run_cli("check-config", "--config", str(again)).returncode == 0


def test_auth_file_readable_by_others_refused(tmp_path, run_cli):
    auth = write(tmp_path, "auth", "branch u p\n", 0o644)
    conf = write(tmp_path, "d.conf", ROUTES, 0o644)
    r = run_cli("check-config", "--config", str(conf))
    assert r.returncode == 78
    assert "%s: auth_file: group or others may access it (mode 0644)" % auth in r.stderr


def test_route_mistakes_named_by_line(tmp_path, run_cli):
    write(tmp_path, "auth", "other u p\n")
    conf = write(tmp_path, "d.conf", ROUTES.replace("held.example = hold",
                                                    "held.example = bounce\n"
                                                    "x.example = smarthost host:99999\n"
                                                    "y.example = mx tls=always"), 0o644)
    r = run_cli("check-config", "--config", str(conf))
    assert r.returncode == 78
    err = r.stderr
    assert "%s:7: route *: auth=branch: no such name in auth_file" % conf in err
    assert "%s:11: route held.example: 'bounce' is not a route type" % conf in err
    assert "%s:12: route x.example: 'host:99999' is not host[:port]" % conf in err
    assert "%s:13: route y.example: tls=always: expected none" % conf in err
    assert "transfer_mode" not in err


def test_bad_transfer_mode(tmp_path, run_cli):
    conf = write(tmp_path, "d.conf", "transfer_mode = sideways\n", 0o644)
    r = run_cli("check-config", "--config", str(conf))
    assert r.returncode == 78
    assert "%s:1: transfer_mode: 'sideways' is not both" % conf in r.stderr
