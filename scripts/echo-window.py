#!/usr/bin/env python3
"""CPU per echo round trip by thread and system call, from `perf script -F
comm,tid,time,ip,sym` (call graphs) on stdin: only the samples between the
first and the last round trip of server IP in DUMP (micbench's
MICBENCH_ECHO_DUMP: "server start_ns us" a line) count.  Used by
scripts/profile-echo.sh.

    echo-window.py DUMP IP HZ
"""
import collections
import re
import statistics
import sys


def syscall_of(syms):
    """The system call a sample is in (the function do_syscall_64 called),
    'user' outside the kernel, 'irq/exc' in an interrupt or exception."""
    if "do_syscall_64" in syms:
        i = syms.index("do_syscall_64")
        return syms[i - 1].replace("__x64_sys_", "") if i > 0 else "do_syscall_64"
    if any(s.startswith(("asm_", "sysvec", "exc_")) for s in syms):
        return "irq/exc"
    return "user"


def main():
    dump, ip, hz = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rts = [(int(l.split()[1]), float(l.split()[2])) for l in open(dump) if l.startswith(ip + " ")]
    if len(rts) < 2:
        sys.exit("echo-window: no round trips of %s in %s" % (ip, dump))
    t0, t1, n = rts[0][0] / 1e9, rts[-1][0] / 1e9, len(rts) - 1
    per_sample = 1e6 / hz / n  # us per round trip that one sample stands for
    head = re.compile(r"^\s*(.+?)\s+(\d+)\s+([\d.]+):")
    threads = collections.Counter()
    calls = collections.defaultdict(collections.Counter)
    for block in sys.stdin.read().split("\n\n"):
        lines = block.strip().split("\n")
        m = head.match(lines[0]) if lines else None
        if not m or not t0 <= float(m.group(3)) <= t1:
            continue
        who = "%s/%s" % (m.group(1).strip(), m.group(2))
        syms = [(l.strip().split(None, 1) + ["?"])[1] for l in lines[1:]]
        threads[who] += 1
        calls[who][syscall_of(syms)] += 1
    print("%d round trips, %.1f us each on the wall, p50 %.1f us; sampled CPU %.1f us per round trip"
          % (n, (t1 - t0) / n * 1e6, statistics.median(r for _, r in rts),
             sum(threads.values()) * per_sample))
    for who, c in threads.most_common(6):
        top = ", ".join("%s %.2f" % (k, v * per_sample) for k, v in calls[who].most_common(8))
        print("  %-26s %6.2f us: %s" % (who, c * per_sample, top))


if __name__ == "__main__":
    main()
