"""The daemon's HTTP listener as a user sees it: GET a page with urllib,
parse the Prometheus text format, check it with promtool (Debian's
prometheus package)."""
import re
import shutil
import subprocess
import urllib.error
import urllib.request

PROMTOOL = shutil.which("promtool")


def http_get(port, path, method="GET", timeout=10):
    """(status, headers, body bytes) of one request to 127.0.0.1:port."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def samples(text):
    """{(name, ((label, value), ...)): float} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, "not a sample line: %r" % line
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(s, name, **labels):
    """The sample name{labels} of samples(), or None."""
    return s.get((name, tuple(sorted(labels.items()))))


def promtool(*args, input=None):
    """promtool ARGS: CompletedProcess (text)."""
    assert PROMTOOL, "promtool is not installed (scripts/install-deps: prometheus)"
    return subprocess.run([PROMTOOL, *args], input=input, capture_output=True, text=True,
                          timeout=60)
