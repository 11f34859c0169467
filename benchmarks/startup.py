"""Start-up time of the command line: `capcal --help`, `capcal list`, `capcal leaderboard RUN`, and a re-run
of a finished embedded-model run (nothing left to sample, so no model is loaded).

Each command runs in a fresh interpreter, ``--repeat`` times after one warm-up run (which fills the OS
file cache and capcal's schema-verdict cache); the table gives the median, min and max wall time and the
median CPU time of the child processes.

    .venv/bin/python benchmarks/startup.py [--repeat 7] [--work DIR]

``--work`` holds the embedded run (created on the first call: 2 triviaqa questions x k = 2, about a
minute) whose results document the leaderboard reads. Data come from ``$CAPCAL_DATA_DIR``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CAPCAL = str(Path(sys.executable).with_name("capcal"))


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child) of one run of ``cmd``; fails loudly on a non-zero exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--work", default="runs/bench-startup", help="where the embedded run lives")
    args = ap.parse_args()
    run_dir = Path(args.work)
    rerun = [CAPCAL, "run", "--model", "embedded", "--tasks", "triviaqa", "--limit", "2", "--k", "2",
             "--max-tokens", "8", "--estimators", "oracle_cc", "--seed", "0", "--no-progress",
             "--output", str(run_dir)]
    if not (run_dir / "results.json").exists():
        print(f"creating {run_dir} (samples the embedded model once) ...", file=sys.stderr)
        timed(rerun)
    commands = {"capcal --help": [CAPCAL, "--help"], "capcal list": [CAPCAL, "list"],
                "capcal leaderboard RUN": [CAPCAL, "leaderboard", str(run_dir)],
                "re-run of the finished embedded run": rerun}
    print(f"| command | median wall s | min | max | median CPU s |  ({args.repeat} runs each, "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r})")
    print("|---|---:|---:|---:|---:|")
    for label, cmd in commands.items():
        timed(cmd)  # warm-up
        runs = [timed(cmd) for _ in range(args.repeat)]
        walls = [w for w, _ in runs]
        cpu = statistics.median(c for _, c in runs)
        print(f"| `{label}` | {statistics.median(walls):.3f} | {min(walls):.3f} | {max(walls):.3f} | {cpu:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
