"""Aggregate generation speed on the CPU: capcal's batched llamacpp backend against a one-stream loop and
against the transformers backend, on the same prompts with k samples each.

Prompts: the first ``--questions`` GSM8K test questions rendered by capcal's gsm8k task (long answers, so
most samples run to ``--max-tokens``). Every engine draws k samples per question at T = 1 untruncated
(top_p 1, top_k off, min_p 0), seeds 0..k-1, ``--max-tokens`` tokens at most:

* **batched**: :class:`capcal.models.llamacpp_backend.LlamaCppBackend` (the k samples of a question in one
  context, one ``llama_decode`` per step over the live sequences, sampling in numpy);
* **one-stream**: llama-cpp-python's ``Llama.create_chat_completion`` called once per sample (what a user
  writes with the high-level API; ``logits_all=False``);
* **transformers**: :class:`capcal.models.hf_backend.HFBackend` on the same GGUF, dequantized (float32 for
  SmolLM2 via the embedded cache, bfloat16 for larger models), the k samples as rows of one batch.

Tokens are the generated tokens, end-of-generation excluded, as each engine reports them. Printed per engine:
tokens, wall seconds, CPU seconds of the process (all its threads), tokens per wall second and tokens per
CPU second, then the ratios batched / one-stream and batched / transformers of both rates, measured in the
same run. On a machine shared with other busy processes the wall rate mostly measures the scheduler; the CPU
rate is the work each engine needs. Acceptance (issue 12): batched >= 1.5x one-stream at k = 8.

Usage::

    nice -n 5 .venv/bin/python benchmarks/local_generation.py --models smollm2-135m,qwen2.5-coder-1.5b \\
        [--questions 4] [--k 8] [--max-tokens 128] [--threads 2] [--engines batched,one-stream,transformers]

A model is a name :func:`capcal.models.llamacpp_backend.resolve_model` knows or a path to a .gguf file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent

from capcal.models import GenerationRequest, SamplingParams  # noqa: E402
from capcal.models.llamacpp_backend import LlamaCppBackend, resolve_model  # noqa: E402
from capcal.registry import get_registry  # noqa: E402

ENGINES = ("batched", "one-stream", "transformers")


def prompts(n: int, data_dir: str | None) -> list[list[dict[str, str]]]:
    task = get_registry().task("gsm8k", data_dir=data_dir)
    return [task.render(ex) for ex in task.examples("eval", n)]


def timed(fn):
    """(result, wall seconds, CPU seconds of this process) of ``fn()``."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def run_batched(path: Path, messages, k: int, max_tokens: int, threads: int) -> tuple[int, float, float]:
    backend = LlamaCppBackend(model=str(path), n_ctx=max(4096, 2 * k * (max_tokens + 400)), n_parallel=2 * k,
                              n_threads=threads)
    try:
        params = SamplingParams(temperature=1.0, max_tokens=max_tokens)
        reqs = [GenerationRequest(m, params, [f"q{i}s{j}" for j in range(k)], list(range(k)))
                for i, m in enumerate(messages)]
        _, wall, cpu = timed(lambda: backend.generate(reqs, lambda pairs: None))
        return backend.stats["tokens"], wall, cpu
    finally:
        backend.close()


def run_one_stream(path: Path, messages, k: int, max_tokens: int, threads: int) -> tuple[int, float, float]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=threads, logits_all=False, verbose=False)
    try:
        def loop() -> int:
            tokens = 0
            for m in messages:
                for seed in range(k):
                    out = llm.create_chat_completion(messages=m, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0,
                                                     max_tokens=max_tokens, seed=seed)
                    tokens += int(out["usage"]["completion_tokens"])
            return tokens

        return timed(loop)
    finally:
        llm.close()


def run_transformers(model: str, path: Path, messages, k: int, max_tokens: int, threads: int
                     ) -> tuple[int, float, float]:
    if model.lower() == "smollm2-135m":
        from capcal.models.embedded import EmbeddedBackend

        backend = EmbeddedBackend(batch_size=k, num_threads=threads)
    else:
        from capcal.models.hf_backend import HFBackend

        backend = HFBackend(str(path.parent), gguf_file=path.name, dtype="bfloat16", batch_size=k,
                            num_threads=threads, local_files_only=True)
    params = SamplingParams(temperature=1.0, max_tokens=max_tokens, logprobs=True)
    reqs = [GenerationRequest(m, params, [f"q{i}s{j}" for j in range(k)], list(range(k)))
            for i, m in enumerate(messages)]
    got: list = []
    _, wall, cpu = timed(lambda: backend.generate(reqs, got.extend))
    return sum(len(c.tokens or []) for _, c in got), wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2-135m", help="comma-separated names or .gguf paths")
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--data-dir", default=os.environ.get("CAPCAL_DATA_DIR") or str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = sorted(set(engines) - set(ENGINES))
    if bad:
        print(f"unknown engine(s) {', '.join(bad)}; choose from {', '.join(ENGINES)}", file=sys.stderr)
        return 2
    messages = prompts(args.questions, args.data_dir)
    print(f"{args.questions} GSM8K questions x k = {args.k}, max {args.max_tokens} tokens, T = 1 untruncated, "
          f"{args.threads} threads")
    runners = {"batched": lambda m, p: run_batched(p, messages, args.k, args.max_tokens, args.threads),
               "one-stream": lambda m, p: run_one_stream(p, messages, args.k, args.max_tokens, args.threads),
               "transformers": lambda m, p: run_transformers(m, p, messages, args.k, args.max_tokens, args.threads)}
    print("| model | engine | tokens | wall s | CPU s | tokens / wall s | tokens / CPU s |")
    print("|---|---|---|---|---|---|---|")
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        path = resolve_model(model)
        rate, cpu_rate = {}, {}
        for engine in engines:
            tokens, wall, cpu = runners[engine](model, path)
            rate[engine], cpu_rate[engine] = tokens / wall, tokens / cpu
            print(f"| {model} | {engine} | {tokens} | {wall:.1f} | {cpu:.1f} | {rate[engine]:.1f} | "
                  f"{cpu_rate[engine]:.1f} |", flush=True)
        for other in ("one-stream", "transformers"):
            if "batched" in rate and other in rate:
                print(f"| {model} | batched / {other} | | | | **{rate['batched'] / rate[other]:.2f}x** | "
                      f"**{cpu_rate['batched'] / cpu_rate[other]:.2f}x** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
