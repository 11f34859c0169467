"""Probe features vs one generated token: the cost of hidden-state extraction on the local backend.

The linear-probe estimator reads the hidden states of every layer (last prompt token and mean over the
prompt) from ONE forward pass over the prompt. This benchmark times that extraction for N GSM8K questions
against generating exactly one token for the same prompts with the same batching, on the embedded model
(SmolLM2-135M-Instruct), in one process, alternating the two measurements, and prints both and the ratio::

    python benchmarks/probe_features.py                  # 32 GSM8K test questions, batches of 8
    python benchmarks/probe_features.py --n 64 --batch-size 16 --repeats 5

Data comes from the local mirror (``--data-dir``, else ``$CAPCAL_DATA_DIR``, else ``../shared/data`` next
to the repository, else the Hugging Face hub through ``datasets``). Target: ratio < 1 (extraction costs
less than one generated token).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def default_data_dir() -> str | None:
    """``$CAPCAL_DATA_DIR``, else ``../shared/data`` beside the repository when it exists, else ``None``."""
    env = os.environ.get("CAPCAL_DATA_DIR")
    if env:
        return env
    beside = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return str(beside) if beside.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="number of GSM8K questions (default 32)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each side (default 3)")
    parser.add_argument("--data-dir", default=default_data_dir(), help="local data mirror")
    parser.add_argument("--json", action="store_true", help="also print one JSON line with the figures")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1" if args.data_dir else "0")

    import numpy as np
    from capcal.errors import CapcalError
    from capcal.models import GenerationRequest, SamplingParams
    from capcal.models.embedded import EmbeddedBackend
    from capcal.registry import get_registry

    try:
        task = get_registry().task("gsm8k", data_dir=args.data_dir)
        messages = [task.render(e) for e in task.examples(limit=args.n)]
        t0 = time.perf_counter()
        backend = EmbeddedBackend(batch_size=args.batch_size)
        load_s = time.perf_counter() - t0
    except CapcalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = len(messages)
    lengths = [len(backend.tokenizer(backend.render(m), add_special_tokens=False)["input_ids"]) for m in messages]
    one_token = SamplingParams(temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, max_tokens=1)
    requests = [GenerationRequest(m, one_token, [f"q{i}"], [i]) for i, m in enumerate(messages)]

    def extract() -> tuple[int, ...]:
        return backend.hidden_states(messages, batch_size=args.batch_size)["last"].shape

    def generate_one() -> int:
        done: list[int] = []
        backend.generate(requests, lambda pairs: done.append(len(pairs)))
        return sum(done)

    extract()  # warm-up: allocator, kernels
    generate_one()
    t_extract, t_generate, c_extract, c_generate = [], [], [], []
    for _ in range(args.repeats):  # alternate, so background load hits both sides alike
        t0, c0 = time.perf_counter(), time.process_time()
        shape = extract()
        t_extract.append(time.perf_counter() - t0)
        c_extract.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        generated = generate_one()
        t_generate.append(time.perf_counter() - t0)
        c_generate.append(time.process_time() - c0)
    assert generated == n and shape[0] == n
    ext, gen = statistics.median(t_extract), statistics.median(t_generate)
    cpu_ext, cpu_gen = statistics.median(c_extract), statistics.median(c_generate)
    print(f"model: {backend.model} ({backend.device}, {backend.dtype}, torch threads {backend._torch.get_num_threads()}), "
          f"load {load_s:.1f} s")
    print(f"prompts: {n} GSM8K test questions, {int(np.mean(lengths))} tokens on average "
          f"(min {min(lengths)}, max {max(lengths)}), batches of {args.batch_size}, median of {args.repeats}")
    print(f"hidden states (all {shape[1]} layers x {shape[2]}, last + mean): {ext:.3f} s = "
          f"{1000 * ext / n:.1f} ms/prompt")
    print(f"generate 1 token per prompt:                    {gen:.3f} s = {1000 * gen / n:.1f} ms/prompt")
    print(f"CPU time (less sensitive to other processes): extraction {cpu_ext:.3f} s, one token {cpu_gen:.3f} s")
    print(f"ratio extraction / one generated token: wall {ext / gen:.2f}, CPU {cpu_ext / cpu_gen:.2f} (target < 1)")
    if args.json:
        print(json.dumps({"n": n, "batch_size": args.batch_size, "repeats": args.repeats,
                          "mean_prompt_tokens": float(np.mean(lengths)), "extract_s": ext,
                          "generate_one_token_s": gen, "ratio": ext / gen, "extract_cpu_s": cpu_ext,
                          "generate_one_token_cpu_s": cpu_gen, "ratio_cpu": cpu_ext / cpu_gen,
                          "extract_runs_s": t_extract, "generate_runs_s": t_generate}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
