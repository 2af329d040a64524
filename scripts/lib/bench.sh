# shellcheck shell=bash
# The benchmark library for scripts/bench.d/*: the arithmetic they print, as shell functions over
# scripts/lib/benchmath.py (whose docstring describes each one). Source it; do not run it.
#   now; since START; duration START END [DIGITS]; secs S; rate COUNT S | rate COUNT START END;
#   quotient A B DIGITS; mbps BYTES S; ratio A B; ratio_at_least A B MIN;
#   median X...; median_int X...; median_low X...; field JSON KEY

BENCH_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

benchmath() { python3 "$BENCH_LIB/benchmath.py" "$@"; }

# One shell function per function of benchmath.py, of the same name: `rate A B` runs
# `benchmath rate A B`.
for _fn in now since duration secs rate quotient total mbps ratio ratio_at_least median median_int median_low field; do
    eval "$_fn() { benchmath $_fn \"\$@\"; }"
done
unset _fn
