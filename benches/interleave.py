#!/usr/bin/env python3
"""Times commands interleaved: round after round, every command once, in a rotated order.

hyperfine runs all of one command's runs before the next command's, so a slow spell of the
machine (another build, the page cache filling) lands on one side only. Here round r runs
the commands starting at the r-th, so each sees the same spells and goes first as often as
the others; the medians and their ratios are the result.

    interleave.py --rounds 10 --warmup 2 [--prepare CMD] [--shell] [--json OUT] \\
        [--baseline 'wrapper true'] --record RESULTS:SECTION:BENCHMARK[:GOAL] \\
        keel 'cmd ...' runc 'cmd ...' crun 'cmd ...'

Commands are split like a shell would (shlex) and run without one, as `hyperfine -N` does;
`--shell` runs them with `bash -c` instead (for `&&` and redirections). `--prepare` runs
with bash before every timed run and is not timed (e.g. emptying a store). A command that
fails stops the benchmark with its stderr: a failing run has no time worth comparing.

--baseline times the wrapper every command runs under (e.g. `nsenter -t PID -m true`) in the
same rounds, and subtracts its median from every median before the ratios: what is left is
each tool's own time, not the harness's.

--record appends one line per peer to RESULTS (tab-separated, read by plot.py):
SECTION, BENCHMARK, keel's median, the peer's name, its median, the unit, GOAL. The first
command is keel's, the others are its peers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time


def run(command: str, shell: bool) -> float:
    argv = ["bash", "-c", command] if shell else shlex.split(command)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"interleave: `{command}` exited with {done.returncode}:\n"
            f"{done.stderr.decode(errors='replace')[-2000:]}"
        )
    return elapsed


def prepare(command: str | None) -> None:
    if command:
        done = subprocess.run(["bash", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            sys.exit(f"interleave: --prepare `{command}` failed: {done.stderr.decode(errors='replace')[-2000:]}")


def fmt(seconds: float, unit: str) -> str:
    return f"{seconds * 1000:.1f} ms" if unit == "ms" else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--prepare")
    parser.add_argument("--shell", action="store_true")
    parser.add_argument("--json", help="write every time here")
    parser.add_argument("--record", help="RESULTS:SECTION:BENCHMARK[:GOAL]")
    parser.add_argument("--baseline", help="the wrapper alone, subtracted from every median")
    parser.add_argument("pairs", nargs="+", help="NAME COMMAND NAME COMMAND ...")
    args = parser.parse_args()
    if len(args.pairs) % 2 or len(args.pairs) < 4:
        sys.exit("interleave: give NAME COMMAND pairs, at least two (keel's first)")
    names, commands = args.pairs[0::2], args.pairs[1::2]
    measured = list(zip(names, commands))
    if args.baseline:
        measured.append(("(wrapper)", args.baseline))
    times: dict[str, list[float]] = {name: [] for name, _ in measured}

    for round_ in range(args.warmup + args.rounds):
        for i in range(len(measured)):
            name, command = measured[(round_ + i) % len(measured)]
            prepare(args.prepare)
            elapsed = run(command, args.shell)
            if round_ >= args.warmup:
                times[name].append(elapsed)

    wrapper = statistics.median(times.pop("(wrapper)")) if args.baseline else 0.0
    medians = {name: statistics.median(t) - wrapper for name, t in times.items()}
    unit = "ms" if max(medians.values()) < 1 else "s"
    first = names[0]
    print(f"{args.rounds} interleaved rounds ({args.warmup} warmup), median [min … max]:")
    if args.baseline:
        print(f"  (the wrapper alone: {fmt(wrapper, unit)}, subtracted from each median)")
    width = max(len(n) for n in names)
    for name in names:
        t = times[name]
        ratio = medians[name] / medians[first]
        print(
            f"  {name:<{width}}  {fmt(medians[name], unit):>10}  [{fmt(min(t) - wrapper, unit)} … {fmt(max(t) - wrapper, unit)}]"
            + ("" if name == first else f"  keel/{name} = {medians[first] / medians[name]:.2f}  ({ratio:.2f}x keel's time)")
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"medians": medians, "times": times, "commands": dict(zip(names, commands))}, out, indent=1)
    if args.record:
        results, section, benchmark, *goal = args.record.split(":", 3)
        scale = 1000 if unit == "ms" else 1
        with open(results, "a") as out:
            for peer in names[1:]:
                out.write(
                    "\t".join([
                        section, benchmark,
                        f"{medians[first] * scale:.4g}", peer, f"{medians[peer] * scale:.4g}", unit,
                        goal[0] if goal else "",
                    ]) + "\n"
                )


if __name__ == "__main__":
    main()
