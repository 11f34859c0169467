"""Client-side cost of capcal's sampling path versus a bare ``openai`` loop, against a local stub server.

Job (BASELINES.md section 1): 2,000 GSM8K questions (train split, rendered by capcal's gsm8k task) x k = 8
samples against ``tests/stub_server.py`` running in a separate process (it answers at once, so every second
measured is client cost).

* **capcal**: :meth:`capcal.pipeline.Pipeline.sample`, i.e. what ``capcal run`` does per sample except grading:
  look up the store, build the requests, :class:`~capcal.models.openai_backend.OpenAIBackend` (its
  retries, bookkeeping and parsing), and a durable :class:`~capcal.store.SampleStore` write (one fsynced
  SQLite transaction per finished HTTP request).
* **bare**: a minimal asyncio loop: one ``openai.AsyncOpenAI`` client, an ``asyncio.Semaphore`` of the same
  concurrency, ``client.chat.completions.create(...)`` with the same body (model, messages, temperature,
  top_p, max_tokens, seed, n, top_k and min_p through ``extra_body``), the choices' texts kept in a list.
  Measured with the SDK's default transport (what a user writes) and with its aiohttp transport.

Both are run with ``n = 8`` in one request (server honours ``n``) and, with ``--modes n,single``, with a
server that ignores ``n`` (capcal detects it and sends one request per sample; the bare loop sends k
requests of ``n = 1``). The runs alternate (capcal, bare, ...) ``--repeats`` times; the medians and the
ratio capcal / bare are printed. Target: ratio <= 1.25.

Usage::

    .venv/bin/python benchmarks/sampler_overhead.py [--questions 2000] [--k 8] [--concurrency 32]
        [--modes n,single] [--repeats 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from capcal.models.openai_backend import OpenAIBackend  # noqa: E402
from capcal.pipeline import Pipeline  # noqa: E402
from capcal.runconfig import RunConfig  # noqa: E402
from capcal.store import SampleStore  # noqa: E402
from stub_server import spawn_server  # noqa: E402

MODEL = "stub-model"


def capcal_once(base_url: str, args: argparse.Namespace, data_dir: str, max_n: int
                ) -> tuple[float, float, int, object]:
    """Time ``Pipeline.sample`` on a fresh run directory.

    Returns:
        (wall seconds, CPU seconds of this process, samples stored, the task split that was sampled).
    """
    with tempfile.TemporaryDirectory(prefix="capcal-bench-") as tmp:
        cfg = RunConfig(output=Path(tmp) / "run", model="openai", tasks=["gsm8k"], k=args.k, logprobs=False,
                        progress=False, data_dir=data_dir, max_tokens=256, temperature=1.0)
        backend = OpenAIBackend(MODEL, base_url, concurrency=args.concurrency, max_n=max_n)
        pipe = Pipeline(cfg, backend=backend)
        pipe._plan()
        pipe.store = SampleStore(pipe.rd.store_path)
        sp = pipe._resolve("gsm8k", "train", limit=args.questions)
        t0, c0 = time.perf_counter(), time.process_time()
        pipe.sample(sp)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        stored = len(pipe.store)
        pipe.store.close()
        backend.close()
        return dt, cpu, stored, sp


async def _bare(base_url: str, sp, k: int, concurrency: int, per_request: int, transport: str) -> int:
    import openai

    http = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", http_client=http)
    sem = asyncio.Semaphore(concurrency)
    texts: list[str] = []
    p = sp.params

    async def one(messages, seed: int, n: int) -> None:
        async with sem:
            r = await client.chat.completions.create(
                model=MODEL, messages=messages, temperature=p.temperature, top_p=p.top_p,
                max_tokens=p.max_tokens, seed=seed, n=n, extra_body={"top_k": -1, "min_p": p.min_p})
        texts.extend(c.message.content for c in r.choices)

    jobs = []
    for msgs, seeds in zip(sp.messages, sp.seeds, strict=True):
        for lo in range(0, k, per_request):
            jobs.append(one(msgs, seeds[lo], min(per_request, k - lo)))
    await asyncio.gather(*jobs)
    await client.close()
    return len(texts)


def bare_once(base_url: str, sp, args: argparse.Namespace, per_request: int, transport: str
              ) -> tuple[float, float, int]:
    """Time the bare loop: (wall seconds, CPU seconds of this process, samples received)."""
    t0, c0 = time.perf_counter(), time.process_time()
    n = asyncio.run(_bare(base_url, sp, args.k, args.concurrency, per_request, transport))
    return time.perf_counter() - t0, time.process_time() - c0, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=2000)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--modes", default="n,single", help="n (server honours n), single (server ignores n)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=os.environ.get("CAPCAL_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    args = ap.parse_args(argv)
    total = args.questions * args.k
    print(f"sampler overhead: {args.questions} questions x k={args.k} = {total} samples, "
          f"concurrency {args.concurrency}, {args.repeats} alternating repeats, stub server in a subprocess")
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        honour = mode == "n"
        with spawn_server(honour_n=honour, log=False) as srv:
            labels = ("capcal", "bare (default transport)", "bare (aiohttp transport)")
            times: dict[str, list[float]] = {label: [] for label in labels}
            cpus: dict[str, list[float]] = {label: [] for label in labels}
            for _ in range(args.repeats):
                dt, cpu, stored, sp = capcal_once(srv.base_url, args, args.data_dir, max_n=args.k)
                assert stored == total, f"capcal stored {stored} of {total} samples"
                times["capcal"].append(dt)
                cpus["capcal"].append(cpu)
                for transport, label in (("httpx", labels[1]), ("aiohttp", labels[2])):
                    dt, cpu, got = bare_once(srv.base_url, sp, args, per_request=args.k if honour else 1,
                                             transport=transport)
                    assert got == total, f"bare loop got {got} of {total} samples"
                    times[label].append(dt)
                    cpus[label].append(cpu)
        reqs = args.questions if honour else total
        what = f"n={args.k} in one request (server honours n)" if honour else "server ignores n: one request per sample"
        print(f"\nmode: {what} -> {reqs} HTTP requests")
        med = {label: statistics.median(ts) for label, ts in times.items()}
        cmed = {label: statistics.median(ts) for label, ts in cpus.items()}
        for label, ts in times.items():
            print(f"  {label:26s} wall median {med[label]:7.3f} s ({total / med[label]:6.0f} samples/s), "
                  f"client CPU median {cmed[label]:7.3f} s; wall runs: " + ", ".join(f"{t:.3f}" for t in ts))
        for label in labels[1:]:
            print(f"  ratio capcal / {label}: wall {med['capcal'] / med[label]:.3f}, "
                  f"client CPU {cmed['capcal'] / cmed[label]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
