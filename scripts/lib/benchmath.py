"""The arithmetic of the benchmark scripts (scripts/bench.d/*), one named function each.

    python3 scripts/lib/benchmath.py FUNCTION ARGS...

prints the result on one line (ratio_at_least answers with its exit status instead). The
scripts call these through the shell functions of scripts/lib/bench.sh, so that every rate,
ratio and median of the benchmarks is computed, and printed, the same way:

    now                      the monotonic clock, in seconds (for duration and rate)
    since START              wall-clock seconds since START (`date +%s.%N`), 2 decimals
    duration START END [D]   END - START, rounded to D decimals if given
    secs SECONDS             seconds with 2 decimals
    rate COUNT SECONDS       COUNT / SECONDS, truncated to an integer (msg/s)
    rate COUNT START END     COUNT / (END - START), truncated
    quotient A B D           A / B with D decimals (rounded: per-item times, rounded rates)
    mbps BYTES SECONDS       BYTES / SECONDS in MB/s (10^6 bytes), 1 decimal
    ratio A B                A / B as a whole percentage ("87%")
    ratio_at_least A B MIN   exit 0 when A / B >= MIN, else 1 (a bound check)
    median X...              the median (the mean of the middle two for an even count)
    median_int X...          the median, truncated to an integer
    median_low X...          the lower middle value, printed as given
    field JSON KEY           one field of a JSON object (as Python prints it: True, 1.5)
"""

import sys


def now():
    import time
    return time.monotonic()


def since(start):
    import time
    return f"{time.time() - float(start):.2f}"


def duration(start, end, digits=None):
    d = float(end) - float(start)
    return d if digits is None else round(d, int(digits))


def secs(seconds):
    return f"{float(seconds):.2f}"


def rate(count, *seconds):
    if len(seconds) == 1:
        return int(float(count) / float(seconds[0]))
    start, end = seconds
    return int(float(count) / (float(end) - float(start)))


def quotient(a, b, digits):
    return f"{float(a) / float(b):.{int(digits)}f}"


def total(*xs):
    """The sum of the numbers, to two decimals (CPU seconds: user + system)."""
    return f"{sum(float(x) for x in xs):.2f}"


def mbps(nbytes, seconds):
    return f"{float(nbytes) / float(seconds) / 1e6:.1f}"


def ratio(a, b):
    return f"{float(a) / float(b):.0%}"


def ratio_at_least(a, b, minimum):
    sys.exit(0 if float(a) / float(b) >= float(minimum) else 1)


def median(*xs):
    import statistics
    return statistics.median(float(x) for x in xs)


def median_int(*xs):
    return int(median(*xs))


def median_low(*xs):
    # As `sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'`: nothing for no values.
    if not xs:
        return ""
    return sorted(xs, key=float)[(len(xs) + 1) // 2 - 1]


def field(text, key):
    import json
    return json.loads(text)[key]


FUNCTIONS = {f.__name__: f for f in (now, since, duration, secs, rate, quotient, mbps, ratio,
                                     ratio_at_least, median, median_int, median_low, field, total)}


def main(argv):
    if len(argv) < 2 or argv[1] not in FUNCTIONS:
        sys.exit(f"usage: benchmath.py FUNCTION ARGS... (functions: {', '.join(FUNCTIONS)})")
    print(FUNCTIONS[argv[1]](*argv[2:]))


if __name__ == "__main__":
    main(sys.argv)
