"""Memory and CPU figures of a running process from /proc, for tests and benchmarks."""
import os


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


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name; None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid, children=False):
    """User + system CPU seconds of PID (all its threads); children: also
    those of its children it has waited for. None if the process is gone."""
    f = _stat_fields(pid)
    if f is None:
        return None
    ticks = int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)
    if children:
        ticks += int(f[13]) + int(f[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_seconds_tree(pid):
    """CPU seconds of PID, its reaped children and its live children (a
    Postfix master and its daemons); None if PID is gone."""
    total = cpu_seconds(pid, children=True)
    if total is None:
        return None
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat_fields(int(name))
            if f is not None and int(f[1]) == pid:  # ppid (field 4)
                total += cpu_seconds(int(name)) or 0.0
    return total
