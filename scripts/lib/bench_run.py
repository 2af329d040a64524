#!/usr/bin/env python3
"""Run `switchyard run -c DOC` until a metric reaches a count, for benchmarks of sources that
never end by themselves (Kafka, RabbitMQ).

    bench_run.py --binary BIN --config DOC --port P --metric NAME --count N [--timeout S]
                 [--seconds S]

Polls http://127.0.0.1:P/metrics every 20 ms and sums every sample of NAME (all label sets).
With --count it stops once the sum reaches N; with --seconds it stops after that long. Then it
sends SIGTERM, waits for the exit and prints one JSON object:
  total    seconds from the start of the process until the count was reached
  active   seconds from the first counted message until the count was reached (excludes
           start-up and, for Kafka, the consumer group join)
  count    the metric's sum when it stopped
  peak_rss_kib  VmHWM of the process just before SIGTERM
  cpu      user plus system CPU seconds of the process until then
  exit     the exit status after SIGTERM (0 expected)
The process's stderr goes to DOC + ".log".
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as answer:
            return answer.read().decode()
    except OSError:
        return None


def metric_sum(text, name):
    if text is None:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    """User plus system CPU time of the process so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metric", required=True)
    parser.add_argument("--count", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--save-metrics", help="write the last scrape before SIGTERM to this file")
    args = parser.parse_args()

    log = open(args.config + ".log", "w")
    started = time.monotonic()
    process = subprocess.Popen([args.binary, "run", "-c", args.config], stdout=subprocess.DEVNULL, stderr=log)
    first = None
    done = None
    value = 0.0
    while True:
        now = time.monotonic()
        if process.poll() is not None:
            print(f"switchyard exited early with {process.returncode}; see {args.config}.log", file=sys.stderr)
            sys.exit(1)
        if now - started > args.timeout:
            print(f"timed out after {args.timeout}s at {value:.0f}", file=sys.stderr)
            break
        text = scrape(args.port)
        sample = metric_sum(text, args.metric)
        if sample is not None:
            value = sample
            if first is None and value > 0:
                first = now
            if args.count is not None and value >= args.count:
                done = now
                break
        if args.seconds is not None and now - started >= args.seconds:
            done = now
            break
        time.sleep(0.02)
    if args.save_metrics:
        with open(args.save_metrics, "w") as out:
            out.write(scrape(args.port) or "")
    rss = peak_rss_kib(process.pid)
    cpu = cpu_seconds(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        status = process.wait()
    result = {
        "total": round((done or time.monotonic()) - started, 3),
        "active": round((done or time.monotonic()) - (first or started), 3),
        "count": int(value),
        "peak_rss_kib": rss,
        "cpu": round(cpu, 2),
        "exit": status,
        "reached": done is not None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
