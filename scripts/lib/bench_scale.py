#!/usr/bin/env python3
"""Kafka -> drop with 1, 2 and 3 `switchyard run` processes in one consumer group, and the time
a scale step takes.

    bench_scale.py --binary BIN --brokers B --topic T --count N --workdir DIR [--runs R]

Throughput: K processes (K = 1, 2, 3) start together in a fresh group, each consuming from the
earliest offset into a drop target; the run ends when the sum of
switchyard_source_acknowledged_messages_total over the K processes reaches N. Reported: whole
time (first start to N, including the group join) and the rate. Every message is counted once:
the sum must equal N exactly, with no process exiting early.

Scale step: one process consumes the same backlog slowly (its drop target waits 20 ms per
batch), so the group is busy; a second process of the group starts; measured from the second
process's start to its first submitted message (the group's rebalance, the partition handover,
the first fetch). Repeated R times (fresh group each); median reported.
Prints one JSON object per measurement and a final summary object.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as answer:
            return answer.read().decode()
    except OSError:
        return None


def metric(text, name):
    if text is None:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


class Member:
    def __init__(self, binary, workdir, label, brokers, topic, group, delay=None):
        self.port = free_port()
        self.config = f"{workdir}/{label}.yaml"
        drop = "{delay: %s}" % delay if delay else "{}"
        with open(self.config, "w") as f:
            f.write(f"""sources:
  - name: in
    kafka:
      brokers: ["{brokers}"]
      topics: [{topic}]
      group: {group}
      startOffset: earliest
      batchSize: 2000
      options: {{session.timeout.ms: "6000", heartbeat.interval.ms: "500"}}
targets:
  - name: out
    drop: {drop}
routes:
  - {{from: [in], to: [out]}}
delivery: {{memoryLimit: 512MiB}}
observability: {{listen: "127.0.0.1:{self.port}", logLevel: warning, logFormat: json}}
""")
        self.log = open(self.config + ".log", "w")
        self.started = time.monotonic()
        self.process = subprocess.Popen([binary, "run", "-c", self.config], stdout=subprocess.DEVNULL, stderr=self.log)

    def value(self, name):
        return metric(scrape(self.port), name)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def throughput(args, members_count, group):
    members = [Member(args.binary, args.workdir, f"tp{members_count}-{i}", args.brokers, args.topic, group) for i in range(members_count)]
    started = min(m.started for m in members)
    total = 0
    done = None
    deadline = started + args.timeout
    failure = None
    while time.monotonic() < deadline:
        if any(m.process.poll() is not None for m in members):
            failure = "a process exited early"
            break
        values = [m.value("switchyard_source_acknowledged_messages_total") for m in members]
        total = int(sum(v or 0 for v in values))
        if total >= args.count:
            done = time.monotonic()
            break
        time.sleep(0.02)
    per_member = [int(m.value("switchyard_source_acknowledged_messages_total") or 0) for m in members]
    exits = [m.stop() for m in members]
    seconds = (done or time.monotonic()) - started
    result = {"measure": "throughput", "processes": members_count, "seconds": round(seconds, 3),
              "acknowledged": sum(per_member), "per_process": per_member,
              "rate": int(args.count / seconds) if done else 0, "exits": exits}
    if failure or not done:
        result["failure"] = failure or f"timed out at {total}"
    elif sum(per_member) != args.count:
        result["failure"] = f"acknowledged {sum(per_member)}, expected exactly {args.count}"
    return result


def scale_step(args, index):
    group = f"scale-step-{os.getpid()}-{index}"
    first = Member(args.binary, args.workdir, f"step{index}-a", args.brokers, args.topic, group, delay="20ms")
    deadline = time.monotonic() + 60
    while (first.value("switchyard_source_messages_total") or 0) == 0:
        if time.monotonic() > deadline or first.process.poll() is not None:
            first.stop()
            return {"measure": "scale_step", "failure": "the first process never consumed"}
        time.sleep(0.02)
    time.sleep(1.0)
    second = Member(args.binary, args.workdir, f"step{index}-b", args.brokers, args.topic, group, delay="20ms")
    reached = None
    deadline = second.started + 60
    while time.monotonic() < deadline:
        if (second.value("switchyard_source_messages_total") or 0) > 0:
            reached = time.monotonic()
            break
        time.sleep(0.01)
    exits = [second.stop(), first.stop()]
    result = {"measure": "scale_step", "seconds": round(reached - second.started, 3) if reached else None, "exits": exits}
    if reached is None:
        result["failure"] = "the new process never received a message"
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    failures = []
    rates = {}
    for members in (1, 2, 3):
        result = throughput(args, members, f"scale-tp-{os.getpid()}-{members}")
        print(json.dumps(result), flush=True)
        rates[members] = result
        if "failure" in result:
            failures.append(f"{members} processes: {result['failure']}")
    steps = []
    for index in range(args.runs):
        result = scale_step(args, index)
        print(json.dumps(result), flush=True)
        if "failure" in result:
            failures.append(f"scale step {index}: {result['failure']}")
        else:
            steps.append(result["seconds"])
    summary = {"measure": "summary", "rates": {k: v["rate"] for k, v in rates.items()},
               "seconds": {k: v["seconds"] for k, v in rates.items()},
               "scale_step_median": statistics.median(steps) if steps else None, "scale_steps": steps,
               "cores": os.cpu_count()}
    print(json.dumps(summary))
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
