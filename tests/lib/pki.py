"""Certificates made by `openssl` for the tests: a private CA and a server
certificate it signs."""
import subprocess

HUB_NAMES = "DNS:localhost,DNS:hub.mxtest,IP:127.0.0.1"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(tmp_path, name):
    """A CA (cert, key) under tmp_path/name."""
    d = tmp_path / name
    d.mkdir()
    cert, key = d / "ca.pem", d / "ca.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=%s test CA" % name, "-keyout", str(key), "-out", str(cert))
    return {"cert": cert, "key": key, "dir": d}


def make_server_cert(ca, names=HUB_NAMES):
    """A certificate for the hub signed by ca, with names as subjectAltName."""
    d = ca["dir"]
    key, csr, cert = d / "hub.key", d / "hub.csr", d / "hub.pem"
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=%s\n" % names)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=hub.test",
            "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca["cert"]), "-CAkey", str(ca["key"]),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return {"cert": cert, "key": key}
