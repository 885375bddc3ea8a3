"""Realistic mail for compression tests and benchmarks, generated from a seed.

Each message is what a relay sees in its queue: a Received chain, a DKIM
signature, MIME multipart/alternative (text and HTML), a quoted reply, in
wire form (CRLF). Deterministic for a seed, so a benchmark and a test see
the same bytes every run. Used by bench/compress, the dictionary training
and the batch transfer tests.
"""

import base64
import random

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "if so no will more can out other into up some what time could about only new than "
    "then them these two may first any like now my such make over our even most after "
    "also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own "
    "see men work long get here between both life being under never day same another "
    "know while last might us great old year off come since against go came right used "
    "take three meeting report budget shipment invoice schedule delivery team project "
    "weather crew vessel station supplies fuel engine repair harbour port cargo "
    "please thanks regards attached review update tomorrow monday friday week morning "
    "afternoon call office contract order payment account customer question answer"
).split()

NAMES = [
    ("Alice", "Martin"), ("Bob", "Keller"), ("Carla", "Nunes"), ("David", "Okafor"),
    ("Eva", "Lindqvist"), ("Farid", "Haddad"), ("Grace", "O'Neill"), ("Hiro", "Tanaka"),
    ("Ines", "Duarte"), ("Jonas", "Weber"), ("Kofi", "Mensah"), ("Lena", "Novak"),
]
DOMAINS = ["branch.example", "hub.example", "example.org", "mail.example.net",
           "shipping.example.com", "research.example.edu"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
          "Nov", "Dec"]


def _date(r):
    return "%s, %d %s 2026 %02d:%02d:%02d +0000" % (
        r.choice(DAYS), r.randint(1, 28), r.choice(MONTHS), r.randint(0, 23),
        r.randint(0, 59), r.randint(0, 59))


def _sentence(r):
    words = [r.choice(WORDS) for _ in range(r.randint(6, 16))]
    return " ".join(words).capitalize() + r.choice([".", ".", ".", "?", "!"])


def _paragraph(r, n):
    out, line = [], ""
    for _ in range(n):
        for w in _sentence(r).split():
            if len(line) + len(w) + 1 > 72:
                out.append(line)
                line = w
            else:
                line = (line + " " + w) if line else w
    if line:
        out.append(line)
    return out


def _hex(r, n):
    return "".join(r.choice("0123456789abcdef") for _ in range(n))


def _received(r, by):
    host = "%s.%s" % (r.choice(["mx1", "mx2", "relay", "smtp", "out"]), r.choice(DOMAINS))
    return ("Received: from %s (%s [192.0.2.%d])\r\n\tby %s (dialmail) with ESMTPS id %s\r\n"
            "\tfor <%s>; %s\r\n" % (host, host, r.randint(1, 254), by, _hex(r, 22).upper(),
                                    "%s@%s" % (r.choice(NAMES)[0].lower(), r.choice(DOMAINS)),
                                    _date(r)))


def _addr(r):
    first, last = r.choice(NAMES)
    return '"%s %s" <%s.%s@%s>' % (first, last, first.lower(), last.lower().replace("'", ""),
                                   r.choice(DOMAINS))


def _dkim(r, domain):
    b = base64.b64encode(r.randbytes(256)).decode()
    bh = base64.b64encode(r.randbytes(32)).decode()
    folded = "\r\n\t ".join(b[i:i + 70] for i in range(0, len(b), 70))
    return ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s;\r\n"
            "\ts=sel2026; t=%d; bh=%s;\r\n\th=From:To:Subject:Date:Message-ID:MIME-Version:"
            "Content-Type;\r\n\tb=%s\r\n" % (domain, r.randint(1700000000, 1800000000), bh, folded))


def message(seed, size=3000):
    """One message of about size bytes (at least the headers)."""
    r = random.Random(seed)
    frm, to = _addr(r), _addr(r)
    domain = frm.split("@")[1].rstrip(">")
    boundary = "=_%s" % _hex(r, 24)
    head = "".join(_received(r, "hub.example") for _ in range(r.randint(2, 3)))
    head += _dkim(r, domain)
    head += ("From: %s\r\nTo: %s\r\nSubject: Re: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n"
             "In-Reply-To: <%s@%s>\r\nMIME-Version: 1.0\r\n"
             "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n"
             % (frm, to, " ".join(r.choice(WORDS) for _ in range(r.randint(2, 6))), _date(r),
                _hex(r, 16), domain, _hex(r, 16), domain, boundary))
    budget = max(200, size - len(head))
    text = []
    while sum(len(x) + 2 for x in text) * 2.2 + 350 < budget:
        text += _paragraph(r, r.randint(2, 4)) + [""]
    quoted = ["> " + x for x in _paragraph(r, 2)]
    plain = "\r\n".join(text + ["On %s, %s wrote:" % (_date(r), to)] + quoted)
    html = "<html><body>\r\n" + "\r\n".join(
        "<p>%s</p>" % x for x in text if x) + "\r\n</body></html>"
    body = ("--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n--%s\r\n"
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "%s\r\n--%s--\r\n" % (boundary, plain, boundary, html, boundary))
    msg = (head + body).encode()
    return msg


def messages(n, size=3000, seed=1):
    return [message(seed * 100003 + i, size) for i in range(n)]


def headers(msg):
    """The header section of a message (for dictionary training)."""
    return msg.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
