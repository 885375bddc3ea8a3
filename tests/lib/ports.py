"""Ports for the servers a test starts.

free_port() hands out ports of this run's own range (DIALMAIL_TEST_PORTS,
set by the Makefile), below the kernel's ephemeral range, so neither the
other test run going on in parallel nor any connection's source port can take
one between our check and its use. No port is handed out twice in a run.
"""
import os
import random
import socket

_PORTS = tuple(int(x) for x in os.environ.get("DIALMAIL_TEST_PORTS", "20000-32000").split("-"))
_GIVEN = set()
_RND = random.Random()


def free_port():
    """A port of this run's range that is free now and not handed out before."""
    for _ in range(500):
        port = _RND.randint(*_PORTS)
        if port in _GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise AssertionError("no free port in %d-%d" % _PORTS)
