"""Memory figures of a running process from /proc, for tests and benchmarks."""


def proc_kb(pid, field, name="status"):
    """The kB value of FIELD ("VmRSS", "VmHWM", "Pss") in /proc/PID/NAME
    ("status", "smaps_rollup"); None if the process or field is gone."""
    try:
        with open("/proc/%d/%s" % (pid, name)) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_kb(pid):
    return proc_kb(pid, "VmRSS")


def sanitized(pid):
    """True for a process built with ASan, which keeps freed memory in
    quarantine: its RSS says nothing about the program's own use."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()
