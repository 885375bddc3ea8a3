"""Bounded waiting: every wait of the tests has a count and a time limit."""
import time


def wait_until(pred, timeout=5.0, interval=0.05):
    """Polls pred() until it returns a true value or timeout passes;
    returns the last value."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
    return pred()
