"Timing helpers shared by the benchmark scripts (run as `python benchmarks/<script>.py`, so this folder is on sys.path)."
import platform, statistics, time


def median_s(fn, repeats=3):
    "Median wall seconds of `fn()` over `repeats` runs (after one warm-up)."
    fn(); times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)


def cpu_name():
    "The CPU's model name (from /proc/cpuinfo where there is one)."
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"): return line.split(":", 1)[1].strip()
    except OSError: pass
    return platform.processor() or "?"
