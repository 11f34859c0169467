"""Time ``capcal import`` of a generic file end to end: import + grading, consistency, metrics, leaderboard.

Writes a generic JSON Lines file of ``--questions`` GSM8K test questions x ``--samples`` responses (plus a
few questions that match no document and a few with fewer samples), then runs the real command lines,
each as its own process, as a user would::

    capcal import FILE --task gsm8k --output RUN --estimators consistency,oracle_cc,oracle_rc,constant
    capcal leaderboard RUN --output RUN/leaderboard.md

and prints the wall time and the CPU time (user + system) of each and of the whole; on a shared machine
the wall time includes waiting for the cores, the CPU time does not. Side by side, it times ``capcal grade`` on the same
responses (regrading alone, no targets), the closest thing capcal had before import.

    .venv/bin/python benchmarks/import_speed.py --data-dir ../shared/data          # 500 x 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_file(path: Path, data_dir: str, q: int, k: int, unmatched: int = 7, short: int = 11) -> None:
    sys.path.insert(0, str(ROOT))
    from capcal.registry import get_registry

    task = get_registry().task("gsm8k", data_dir=data_dir)
    rows = []
    for i, ex in enumerate(task.examples("eval")[:q]):
        gold = int(ex.fields["answer"])
        n = k // 2 if i < short else k
        right = (i * 7) % (n + 1)
        rows.append({"id": ex.id, "responses": [f"The answer is {gold}." if j < right else f"I think {gold + j + 1}."
                                                for j in range(n)]})
    rows += [{"id": f"unknown-{i}", "responses": ["The answer is 1."] * k} for i in range(unmatched)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """``(wall seconds, CPU seconds (user + system) of the child, completed process)``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    capcal = [sys.executable, "-m", "capcal"]
    with tempfile.TemporaryDirectory() as tmp:
        src, run = Path(tmp) / "samples.jsonl", Path(tmp) / "run"
        make_file(src, args.data_dir, args.questions, args.samples)
        t_import, c_import, p = timed([*capcal, "import", str(src), "--task", "gsm8k", "--output", str(run), "--data-dir",
                             args.data_dir, "--estimators", "consistency,oracle_cc,oracle_rc,constant",
                             "--bootstrap", str(args.bootstrap), "--no-progress"])
        if p.returncode:
            print(p.stderr, file=sys.stderr)
            return 1
        t_board, c_board, p2 = timed([*capcal, "leaderboard", str(run), "--output", str(run / "leaderboard.md")])
        if p2.returncode:
            print(p2.stderr, file=sys.stderr)
            return 1
        grade_in = Path(tmp) / "grade.jsonl"
        grade_in.write_text("".join(json.dumps({"doc": {"question": "q", "answer": "#### 1"}, "response": r})
                                    + "\n" for line in src.read_text().splitlines()
                                    for r in json.loads(line)["responses"]))
        t_grade, c_grade, p3 = timed([*capcal, "grade", "--task", "gsm8k", "--responses", str(grade_in), "--output",
                             str(Path(tmp) / "graded.jsonl")])
        print(p.stderr.strip())
        print(f"questions x samples: {args.questions} x {args.samples}, bootstrap {args.bootstrap}")
        load = os.getloadavg()[0]
        print(f"{'step':58s} {'wall s':>7s} {'CPU s':>7s}   (load average {load:.1f} on {os.cpu_count()} cores)")
        print(f"{'capcal import (match, store, grade, 4 estimators, metrics)':58s} {t_import:7.2f} {c_import:7.2f}")
        print(f"{'capcal leaderboard':58s} {t_board:7.2f} {c_board:7.2f}")
        print(f"{'whole job':58s} {t_import + t_board:7.2f} {c_import + c_board:7.2f}")
        print(f"{'capcal grade of the same responses (regrading only)':58s} {t_grade:7.2f} {c_grade:7.2f}"
              + ("" if p3.returncode == 0 else " (failed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
