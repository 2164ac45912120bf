#!/usr/bin/env python3
"""Replaces the generated section of each benchmark in BENCHMARKS.md.

A section is delimited by <!-- bench:NAME --> ... <!-- /bench:NAME -->;
the text between is replaced by results/NAME.md, with the date and machine,
and the load average before the run when results/NAME.load holds it, and
the steal during it when results/NAME.steal holds "ticks seconds cpus".
"""
import os, platform, re, sys, datetime

path, results = sys.argv[1], sys.argv[2]
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
cpu = "unknown cpu"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
stamp = f"_Measured {datetime.date.today()} on {os.cpu_count()} cores ({cpu}), kernel {platform.release()}"
for f in sorted(os.listdir(results)):
    if not f.endswith(".md"):
        continue
    name = f[:-3]
    load = ""
    try:
        load = open(os.path.join(results, name + ".load")).read().split()
        load = f"; load average before the run {' / '.join(load)} (1/5/15 min)"
    except OSError:
        pass
    try:
        ticks, secs, ncpu = open(os.path.join(results, name + ".steal")).read().split()
        hz = os.sysconf("SC_CLK_TCK")
        if int(secs) > 0:
            load += (f"; the hypervisor took {int(ticks) / hz:.1f} s of the {int(ncpu)} CPUs' "
                     f"{int(secs) * int(ncpu)} s during it (steal)")
    except (OSError, ValueError):
        pass
    body = stamp + load + "._\n\n" + open(os.path.join(results, f)).read()
    block = f"<!-- bench:{name} -->\n{body}<!-- /bench:{name} -->"
    pat = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    if pat.search(text):
        text = pat.sub(lambda m: block, text)
    else:
        text += f"\n## {name}\n\n{block}\n"
open(path, "w").write(text)
