"""The daemon's HTTP listener as a user sees it: GET a page with urllib,
parse the Prometheus text format, check it with promtool (Debian's
prometheus package), load a page in headless Chromium and read its DOM."""
import http.client
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser

PROMTOOL = shutil.which("promtool")


def http_get(port, path, method="GET", timeout=10):
    """(status, headers, body bytes) of one request to 127.0.0.1:port."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def unix_get(path, url):
    """(status, body bytes) of GET url over the unix socket at path."""
    conn = http.client.HTTPConnection("localhost", timeout=10)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.settimeout(10)
    conn.sock.connect(str(path))
    conn.request("GET", url)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


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


CHROMIUM = shutil.which("chromium")


def chromium(tmp, *args, timeout=90):
    """Headless Chromium (Debian's chromium package) with a profile of its
    own under tmp: CompletedProcess (text)."""
    assert CHROMIUM, "chromium is not installed (scripts/install-deps: chromium)"
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--user-data-dir=%s" % (tmp / "chromium-profile"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


class Dom(HTMLParser):
    """The rendered DOM as Chromium dumps it: every element's tag and
    attributes, with the ids and classes of its ancestors."""

    def __init__(self, text):
        super().__init__()
        self.elements = []
        self.stack = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        a["_tag"] = tag
        a["_in"] = [(p.get("id"), p.get("class")) for p in self.stack]
        self.elements.append(a)
        if tag not in ("meta", "br", "circle", "path", "polyline", "rect", "use"):
            self.stack.append(a)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["_tag"] == tag:
                del self.stack[i:]
                break

    def find(self, tag, inside=None, **attrs):
        """Elements of tag with the given attributes, below an element
        whose id or class is inside."""
        return [e for e in self.elements if e["_tag"] == tag
                and all(e.get(k.replace("_", "-")) == v for k, v in attrs.items())
                and (inside is None or any(inside in (i, c) for i, c in e["_in"]))]
