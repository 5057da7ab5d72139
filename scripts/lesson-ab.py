#!/usr/bin/env python3
"""Every lesson, run by two nsx binaries in turn: median wall and CPU time of each.

    scripts/lesson-ab.py BEFORE AFTER [RUNS]

Runs alternate (before, after, after, before, ...) so that a machine whose speed drifts
(a shared host) weighs on both alike. Each lesson gets RUNS runs per binary (default 60),
fewer for slow lessons: about 20 s of each binary's time per lesson, at least 7 runs.
A lesson is compared only when both binaries know it and it exits 0 under both; the
others are listed with the reason. CPU is user + system of the lesson and its probes
(wait4's rusage). Called by `scripts/bench.sh --against REV` (see CONTRIBUTING.md).

Both binaries are first dropped from the page cache and read back in whole: most of a
short lesson is page faults on nsx's own code, and how a file came into the page cache
(written by the linker, copied, read on demand) changes their cost by a tenth or more.
"""

import json
import os
import statistics
import subprocess
import sys
import time


def run(binary, lesson):
    """One `nsx lesson LESSON --format json`: (wall ms, cpu ms, exit code)."""
    argv = [binary, "lesson", lesson, "--format", "json"]
    devnull = [(os.POSIX_SPAWN_OPEN, fd, "/dev/null", os.O_WRONLY, 0) for fd in (1, 2)]
    start = time.perf_counter()
    pid = os.posix_spawn(binary, argv, os.environ, file_actions=devnull)
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter() - start) * 1000
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, os.waitstatus_to_exitcode(status)


def same_page_cache(binary):
    """Evicts `binary` from the page cache (posix_fadvise(2) DONTNEED) and reads it back
    sequentially, so two binaries compared are cached alike."""
    fd = os.open(binary, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)


def lessons_of(binary):
    out = subprocess.run([binary, "lessons", "--format", "json"], capture_output=True, text=True)
    return [entry["id"] for entry in json.loads(out.stdout)]


def main():
    before, after = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    for binary in (before, after):
        same_page_cache(binary)
    known = set(lessons_of(before))
    print(f"{'lesson':<9} {'before':>9} {'after':>9} {'after/before':>12}   cpu before -> after   runs")
    for lesson in lessons_of(after):
        if lesson not in known:
            print(f"{lesson:<9} skipped: the before binary has no such lesson")
            continue
        first = [run(b, lesson) for b in (before, after)]
        codes = [c for _, _, c in first]
        if codes != [0, 0]:
            print(f"{lesson:<9} skipped: exit codes {codes[0]} (before) and {codes[1]} (after) on this machine")
            continue
        n = max(7, min(runs, int(20_000 / max(first[0][0], first[1][0], 1.0))))
        seen = {before: [], after: []}
        for i in range(n):
            for b in (before, after) if i % 2 == 0 else (after, before):
                wall, cpu, code = run(b, lesson)
                if code != 0:
                    sys.exit(f"{lesson}: {b} exited {code}")
                seen[b].append((wall, cpu))
        wall = {b: statistics.median(w for w, _ in seen[b]) for b in seen}
        cpu = {b: statistics.median(c for _, c in seen[b]) for b in seen}
        print(
            f"{lesson:<9} {wall[before]:7.2f}ms {wall[after]:7.2f}ms {wall[after] / wall[before]:12.2f}"
            f"   {cpu[before]:7.2f} -> {cpu[after]:7.2f} ms  {n:5d}",
            flush=True,
        )


if __name__ == "__main__":
    main()
