"""``capcal run`` end to end against lm-evaluation-harness and a bare aiohttp loop, side by side in one run.

Job (issue 15, BASELINES.md section 4): GSM8K test, 1,319 questions x k = 8 = 10,552 samples, concurrency 32,
against ``tests/stub_server.py`` in a separate process (an OpenAI-compatible server that answers at once, so
every second measured is client cost).

Measured, alternating, ``--repeats`` times each:

* **capcal** (whole command, start to exit): ``capcal run --model openai --tasks gsm8k --k 8 --concurrency 32``
  on a fresh run directory: imports, data, prompts, sampling into the durable store, grading, targets, the
  analysis with 1,000 bootstrap resamples and results.json.
* **lm_eval** (whole command, when ``lm_eval`` is installed; its version is printed): ``lm_eval --model
  local-chat-completions`` with ``num_concurrent=32`` on a GSM8K task that reads the same JSONL file, with
  ``repeats: 8`` (one request per repeat, exact match on the final number). Not a capcal dependency:
  ``pip install lm_eval`` to include it.
* **capcal sampling phase** (in-process): :meth:`capcal.pipeline.Pipeline.sample` on the same 1,319 x 8 samples,
  i.e. store look-up, requests, the OpenAI backend and durable store writes.
* **raw loop request phase** (in-process): a bare ``aiohttp`` loop, ``asyncio.Semaphore(32)``, one POST per
  question with ``n = 8`` and the same JSON body capcal sends (log-probabilities included), the answer parsed
  and the texts kept.

Printed: the median of each, and the ratios ``lm_eval / capcal`` (target >= 5) and ``capcal sampling /
raw request phase`` (target <= 3).

Usage::

    .venv/bin/python benchmarks/end_to_end.py [--repeats 3] [--k 8] [--concurrency 32] [--limit N]
        [--data-dir DIR] [--no-lm-eval]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

MODEL = "stub-model"

LM_EVAL_TASK = """task: capcal_bench_gsm8k
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer.split('####')[-1].strip()}}}}"
repeats: {k}
generation_kwargs:
  until: []
  do_sample: true
  temperature: 1.0
  max_gen_toks: 256
filter_list:
  - name: all-answers
    filter:
      - function: regex
        regex_pattern: "(-?[0-9.,]+)\\\\.?$"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def _timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return dt


def capcal_command(base_url: str, args: argparse.Namespace, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "capcal", "run", "--model", "openai",
           "--model_args", f"base_url={base_url},model={MODEL}", "--tasks", "gsm8k", "--k", str(args.k),
           "--concurrency", str(args.concurrency), "--data-dir", str(args.data_dir), "--output", str(out),
           "--no-progress", "--max-tokens", "256"]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    return cmd


def lm_eval_command(base_url: str, args: argparse.Namespace, include: Path, out: Path) -> list[str]:
    exe = shutil.which("lm_eval", path=str(Path(sys.executable).parent)) or shutil.which("lm_eval")
    cmd = [exe or "lm_eval", "--model", "local-chat-completions",
           "--model_args", f"model={MODEL},base_url={base_url}/chat/completions,num_concurrent={args.concurrency},"
                           "max_retries=3,tokenized_requests=False",
           "--tasks", "capcal_bench_gsm8k", "--include_path", str(include), "--apply_chat_template",
           "--output_path", str(out)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    return cmd


def capcal_sampling(base_url: str, args: argparse.Namespace, tmp: Path) -> tuple[float, int]:
    """(seconds of Pipeline.sample on a fresh run directory, samples stored)."""
    from capcal.models.openai_backend import OpenAIBackend
    from capcal.pipeline import Pipeline
    from capcal.runconfig import RunConfig
    from capcal.store import SampleStore

    out = tmp / f"sampling-{time.monotonic_ns()}"
    cfg = RunConfig(output=out, model="openai", tasks=["gsm8k"], k=args.k, progress=False,
                    data_dir=str(args.data_dir), max_tokens=256, limit=args.limit or None)
    backend = OpenAIBackend(MODEL, base_url, concurrency=args.concurrency, max_n=args.k)
    pipe = Pipeline(cfg, backend=backend)
    pipe._plan()
    pipe.store = SampleStore(pipe.rd.store_path)
    sp = pipe._resolve("gsm8k", "eval")
    t0 = time.perf_counter()
    pipe.sample(sp)
    dt = time.perf_counter() - t0
    stored = len(pipe.store)
    pipe.store.close()
    backend.close()
    capcal_sampling.split = sp  # the prompts and seeds, for the raw loop
    return dt, stored


def raw_bodies(sp, k: int) -> list[dict]:
    """The JSON bodies capcal sends for the sampled split (same fields, logprobs included), one per question."""
    from capcal.models.base import GenerationRequest
    from capcal.models.openai_backend import OpenAIBackend

    shaper = OpenAIBackend(MODEL, "http://127.0.0.1:1/v1", server="generic")
    bodies = []
    for messages, seeds in zip(sp.messages, sp.seeds, strict=True):
        req = GenerationRequest(messages=messages, params=sp.params, sample_ids=[str(j) for j in range(k)],
                                seeds=list(seeds[:k]))
        bodies.append({**shaper._base_body(req), "top_k": -1, "seed": seeds[0], "n": k})
    return bodies


async def _raw_loop(base_url: str, bodies: list[dict], concurrency: int) -> int:
    import aiohttp

    texts: list[str] = []
    sem = asyncio.Semaphore(concurrency)
    url = base_url + "/chat/completions"
    headers = {"Authorization": "Bearer EMPTY", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(body: dict) -> None:
            async with sem, session.post(url, data=json.dumps(body), headers=headers) as r:
                data = json.loads(await r.read())
            texts.extend(c["message"]["content"] for c in data["choices"])

        await asyncio.gather(*(one(b) for b in bodies))
    return len(texts)


def raw_once(base_url: str, args: argparse.Namespace) -> tuple[float, int]:
    bodies = raw_bodies(capcal_sampling.split, args.k)
    t0 = time.perf_counter()
    n = asyncio.run(_raw_loop(base_url, bodies, args.concurrency))
    return time.perf_counter() - t0, n


def main(argv: list[str] | None = None) -> int:
    from stub_server import spawn_server

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0, help="first N questions only (default: all 1,319)")
    ap.add_argument("--data-dir", type=Path,
                    default=Path(os.environ.get("CAPCAL_DATA_DIR") or ROOT.parent / "shared" / "data"))
    ap.add_argument("--no-lm-eval", action="store_true", help="leave lm_eval out even when it is installed")
    args = ap.parse_args(argv)
    data_file = args.data_dir / "openai__gsm8k" / "main" / "test.jsonl"
    n_q = args.limit or sum(1 for line in data_file.open(encoding="utf-8") if line.strip())
    total = n_q * args.k
    have_lm_eval = not args.no_lm_eval and importlib.util.find_spec("lm_eval") is not None
    lm_version = importlib.metadata.version("lm_eval") if have_lm_eval else None
    print(f"end to end: GSM8K test, {n_q} questions x k={args.k} = {total} samples, concurrency {args.concurrency}, "
          f"{args.repeats} alternating repeats, stub server in a subprocess")
    print(f"python {sys.version.split()[0]}, capcal {importlib.metadata.version('capcal')}, "
          f"lm_eval {lm_version or 'not installed (pip install lm_eval to compare)'}, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    times: dict[str, list[float]] = {"capcal run (whole command)": [], "capcal sampling phase": [],
                                     "raw aiohttp request phase": []}
    if have_lm_eval:
        times["lm_eval (whole command)"] = []
    with tempfile.TemporaryDirectory(prefix="capcal-e2e-") as tmp_s, spawn_server(log=False) as srv:
        tmp = Path(tmp_s)
        include = tmp / "lm_eval_tasks"
        include.mkdir()
        (include / "capcal_bench_gsm8k.yaml").write_text(LM_EVAL_TASK.format(data_file=data_file, k=args.k))
        for r in range(args.repeats):
            out = tmp / f"capcal-{r}"
            times["capcal run (whole command)"].append(_timed(capcal_command(srv.base_url, args, out), ROOT))
            results = json.loads((out / "results.json").read_text())
            assert results["tasks"]["gsm8k"]["n_questions"] == n_q, "capcal run did not cover every question"
            if have_lm_eval:
                times["lm_eval (whole command)"].append(
                    _timed(lm_eval_command(srv.base_url, args, include, tmp / f"lm-{r}"), tmp))
            dt, stored = capcal_sampling(srv.base_url, args, tmp)
            assert stored == total, f"capcal stored {stored} of {total} samples"
            times["capcal sampling phase"].append(dt)
            dt, got = raw_once(srv.base_url, args)
            assert got == total, f"raw loop got {got} of {total} samples"
            times["raw aiohttp request phase"].append(dt)
    med = {label: statistics.median(ts) for label, ts in times.items()}
    for label, ts in times.items():
        print(f"  {label:28s} median {med[label]:7.3f} s ({total / med[label]:7.0f} samples/s); runs: "
              + ", ".join(f"{t:.3f}" for t in ts))
    if have_lm_eval:
        print(f"  ratio lm_eval wall / capcal wall: {med['lm_eval (whole command)'] / med['capcal run (whole command)']:.2f}"
              "  (target >= 5)")
    print(f"  ratio capcal sampling / raw request phase: "
          f"{med['capcal sampling phase'] / med['raw aiohttp request phase']:.2f}  (target <= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
