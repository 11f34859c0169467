"""The OpenAI-compatible backend against the real stub server (tests/stub_server.py) over real HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
import urllib.request
from collections import Counter

import pytest
from capcal.errors import ModelError
from capcal.models import Completion, GenerationRequest, SamplingParams
from capcal.models.factories import parse_model_args
from capcal.models.openai_backend import OpenAIBackend, _retry_after, messages_to_prompt, split_reasoning
from capcal.registry import get_registry
from stub_server import Faults, StubServer


def _requests(q: int, k: int, params: SamplingParams | None = None, prefix: str = "question") -> list[GenerationRequest]:
    params = params or SamplingParams(temperature=0.8, max_tokens=32)
    return [GenerationRequest(messages=[{"role": "system", "content": "Answer briefly."},
                                        {"role": "user", "content": f"{prefix} {i}"}],
                              params=params, sample_ids=[f"q{i}-s{j}" for j in range(k)],
                              seeds=[1000 * i + 7 * j + 1 for j in range(k)])
            for i in range(q)]


def _collect(backend: OpenAIBackend, reqs: list[GenerationRequest]) -> tuple[list[tuple[str, Completion]], list[int]]:
    got: list[tuple[str, Completion]] = []
    prog: list[int] = []
    backend.generate(reqs, got.extend, prog.append)
    return got, prog


def _raw(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_n_honoured_sends_ceil_k_over_max_n_requests_per_question():
    with StubServer(honour_n=True) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=3, concurrency=8)
        reqs = _requests(5, 8)
        got, prog = _collect(b, reqs)
        b.close()
        log = srv.request_log
    assert len(log) == 5 * math.ceil(8 / 3)
    per_q = Counter(e["prompt"] for e in log)
    assert set(per_q.values()) == {3}
    for r in reqs:
        entries = sorted((e for e in log if e["prompt"] == r.messages[-1]["content"]), key=lambda e: e["seed"])
        assert [(e["seed"], e["n"]) for e in entries] == [(r.seeds[0], 3), (r.seeds[3], 3), (r.seeds[6], 2)]
    ids = Counter(sid for sid, _ in got)
    assert set(ids) == {s for r in reqs for s in r.sample_ids} and set(ids.values()) == {1}
    assert sum(prog) == 40
    assert b.n_honoured is True
    by_id = dict(got)
    # each sample carries the seed of the request it came from (seeds[0] of its chunk)
    assert [by_id[f"q2-s{j}"].seed for j in range(8)] == [2001] * 3 + [2022] * 3 + [2043] * 2


def test_n_ignored_falls_back_to_one_request_per_sample_with_its_own_seed():
    with StubServer(honour_n=False) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=8, concurrency=4)
        reqs = _requests(6, 5)
        got, _ = _collect(b, reqs)
        b.close()
        log = srv.request_log
    assert b.n_honoured is False
    assert len(log) == 6 * 5  # nothing wasted: the one choice of an ignored n=5 request is kept
    for r in reqs:
        seeds = sorted(e["seed"] for e in log if e["prompt"] == r.messages[-1]["content"])
        assert seeds == sorted(r.seeds)  # every sample asked for once, with its own seed
    by_id = dict(got)
    assert len(got) == len(by_id) == 30
    assert all(by_id[r.sample_ids[j]].seed == r.seeds[j] for r in reqs for j in range(5))
    # the answers are those the server gives for (prompt, seed), so different seeds give different answers
    texts = {by_id[f"q0-s{j}"].text for j in range(5)}
    assert len(texts) >= 2


def test_every_fault_mode_at_once_delivers_each_sample_exactly_once():
    faults = Faults(rate_429=0.12, rate_500=0.12, rate_stall=0.06, rate_drop=0.1, rate_truncate=0.1,
                    retry_after=0.02, stall_s=5.0, seed=1, max_per_request=3)
    with StubServer(faults=faults, honour_n=True) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=2, concurrency=16, timeout=0.5,
                          backoff_base=0.01, backoff_max=0.1, max_retries=6)
        reqs = _requests(40, 4)
        got, prog = _collect(b, reqs)
        b.close()
        log = srv.request_log
    ids = Counter(sid for sid, _ in got)
    assert len(ids) == 160 and set(ids.values()) == {1}
    assert sum(prog) == 160
    outcomes = Counter(e["outcome"] for e in log)
    assert {"429", "500", "stall", "drop", "truncate"} <= set(outcomes), outcomes
    assert b.stats["retries"] == len(log) - outcomes["ok"] > 0
    # every chunk (prompt, seed) was answered successfully exactly once: nothing asked again after success
    ok = Counter((e["prompt"], e["seed"]) for e in log if e["outcome"] == "ok")
    assert len(ok) == 40 * 2 and set(ok.values()) == {1}


def test_sampling_parameters_are_always_explicit():
    params = SamplingParams(temperature=0.7, top_p=0.9, top_k=20, min_p=0.05, max_tokens=64, stop=("\n\n",))
    default = SamplingParams()
    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=2)
        _collect(b, _requests(3, 3, params) + _requests(2, 1, default, prefix="plain"))
        b.close()
        log = srv.request_log
    assert len(log) == 3 * 2 + 2
    for e in log:
        body = e["body"]
        for key in ("model", "temperature", "top_p", "top_k", "min_p", "max_tokens", "seed", "n"):
            assert key in body, (key, body)
        assert isinstance(body["seed"], int)
        if e["prompt"].startswith("question"):
            assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"], body["max_tokens"]) == \
                (0.7, 0.9, 20, 0.05, 64)
            assert body["stop"] == ["\n\n"]
        else:  # untruncated defaults, top_k "off" sent as -1 (understood by vLLM, SGLang and llama.cpp)
            assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"], body["max_tokens"]) == \
                (1.0, 1.0, -1, 0.0, 512)
            assert "stop" not in body


def test_chat_logprobs_are_parsed_like_the_raw_response():
    params = SamplingParams(max_tokens=32, logprobs=True, top_logprobs=3)
    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=4)
        reqs = _requests(1, 2, params)
        got = dict(_collect(b, reqs)[0])
        b.close()
        raw = _raw(srv.base_url + "/chat/completions", srv.request_log[0]["body"])
    for j, ch in enumerate(raw["choices"]):
        c = got[f"q0-s{j}"]
        entries = ch["logprobs"]["content"]
        assert c.text == ch["message"]["content"]
        assert c.tokens == [e["token"] for e in entries] and "".join(c.tokens) == c.text
        assert c.token_logprobs == [e["logprob"] for e in entries]
        assert c.top_logprobs == [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries]
        assert all(len(d) == 3 for d in c.top_logprobs)
        assert c.finish_reason == "stop" and c.reasoning is None


def test_completions_mode_prompt_and_logprobs():
    params = SamplingParams(max_tokens=3, logprobs=True, top_logprobs=2)
    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url, mode="completions", prompt_format="roles")
        reqs = _requests(1, 1, params)
        got = dict(_collect(b, reqs)[0])
        b.close()
        e = srv.request_log[0]
        raw = _raw(srv.base_url + "/completions", e["body"])
    assert e["path"] == "/v1/completions" and "messages" not in e["body"]
    assert e["body"]["prompt"] == "System: Answer briefly.\n\nUser: question 0\n\nAssistant:"
    assert e["body"]["logprobs"] == 2
    c, ch = got["q0-s0"], raw["choices"][0]
    assert c.text == ch["text"] and c.finish_reason == "length"  # max_tokens=3 cut the answer
    assert c.tokens == ch["logprobs"]["tokens"] and c.token_logprobs == ch["logprobs"]["token_logprobs"]
    assert c.top_logprobs == ch["logprobs"]["top_logprobs"]


def test_messages_to_prompt_formats():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert messages_to_prompt(msgs) == "S\n\nU"
    assert messages_to_prompt(msgs[1:]) == "U"
    assert messages_to_prompt(msgs, "roles") == "System: S\n\nUser: U\n\nAssistant:"
    with pytest.raises(ModelError, match="prompt_format"):
        messages_to_prompt(msgs, "chatml")


@pytest.mark.parametrize("mode", ["field", "think"])
def test_reasoning_is_kept_apart_from_the_answer(mode):
    params = SamplingParams(max_tokens=32, logprobs=True)
    with StubServer(reasoning=mode) as srv:
        b = OpenAIBackend("stub-model", srv.base_url)
        got = dict(_collect(b, _requests(1, 2, params))[0])
        b.close()
        raw = _raw(srv.base_url + "/chat/completions", srv.request_log[0]["body"])
    for j in range(2):
        c = got[f"q0-s{j}"]
        assert c.reasoning is not None and c.reasoning.startswith("Thinking about 'question 0'")
        assert "<think>" not in c.text and "</think>" not in c.text and "Thinking" not in c.text
        assert c.text.startswith("The answer is") or c.text.startswith("Let me") or c.text.startswith("I am")
        # the tokens are those of the answer only: they spell the text, their logprobs are the server's
        assert "".join(c.tokens).lstrip() == c.text
        raw_lps = [e["logprob"] for e in raw["choices"][j]["logprobs"]["content"]]
        assert c.token_logprobs == raw_lps[len(raw_lps) - len(c.tokens):]


def test_split_reasoning_edge_cases():
    assert split_reasoning("plain answer") == (None, "plain answer", 0)
    content = "  <think>a b</think>\n\nAnswer: 4"
    assert split_reasoning(content) == ("a b", "Answer: 4", content.index("Answer"))
    assert split_reasoning("<think>still thinking") == ("still thinking", "", len("<think>still thinking"))
    content = "opened by the template</think> 42"
    assert split_reasoning(content) == ("opened by the template", "42", content.index("42"))
    assert split_reasoning("x <think>late</think> y") == (None, "x <think>late</think> y", 0)


def test_unreachable_server_fails_fast_with_one_line_error():
    port = _free_port()
    b = OpenAIBackend("m", f"http://127.0.0.1:{port}/v1", unreachable_after=1.0, backoff_base=0.2)
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="cannot reach") as err:
        b.generate(_requests(3, 2), lambda pairs: None)
    b.close()
    assert time.monotonic() - t0 < 6.0
    assert "\n" not in str(err.value) and f"127.0.0.1:{port}" in str(err.value)


def test_several_urls_share_the_load_and_a_dead_one_is_skipped():
    with StubServer() as a, StubServer() as b:
        be = OpenAIBackend("stub-model", f"{a.base_url}|{b.base_url}", max_n=1, concurrency=8)
        got, _ = _collect(be, _requests(20, 2))
        be.close()
        na, nb = len(a.request_log), len(b.request_log)
        assert len(got) == 40 and na + nb == 40 and min(na, nb) >= 10
        dead = f"http://127.0.0.1:{_free_port()}/v1"
        be = OpenAIBackend("stub-model", [dead, a.base_url], max_n=1, concurrency=4, backoff_base=0.01)
        got, _ = _collect(be, _requests(10, 2, prefix="other"))
        be.close()
        assert len({sid for sid, _ in got}) == 20
        assert len([e for e in a.request_log if e["prompt"].startswith("other")]) == 20


def test_concurrency_is_bounded():
    with StubServer(latency_s=0.05) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=1, concurrency=3)
        _collect(b, _requests(6, 2))
        b.close()
        assert srv.max_in_flight == 3


def test_retry_after_is_honoured():
    with StubServer(faults=Faults(schedule=("429",), retry_after=0.6)) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, backoff_base=0.01)
        got, _ = _collect(b, _requests(1, 1))
        b.close()
        log = srv.request_log
    assert [e["outcome"] for e in log] == ["429", "ok"] and len(got) == 1
    assert log[1]["t"] - log[0]["t"] >= 0.58


def test_retry_after_header_parsing():
    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after({"retry-after": "3"}) == 3.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < _retry_after({"retry-after": date}) <= 31
    assert _retry_after({"retry-after": "soon"}) is None and _retry_after({}) is None


def test_retries_are_bounded_then_model_error():
    with StubServer(faults=Faults(rate_500=1.0, max_per_request=None)) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_retries=2, backoff_base=0.01)
        with pytest.raises(ModelError, match="giving up after 3 attempts: HTTP 500"):
            b.generate(_requests(1, 1), lambda pairs: None)
        b.close()
        assert len(srv.request_log) == 3


def test_client_errors_are_not_retried():
    bad = GenerationRequest(messages=[{"role": "system", "content": "no user turn"}], params=SamplingParams(),
                            sample_ids=["x"], seeds=[1])
    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url, backoff_base=0.01)
        with pytest.raises(ModelError, match="HTTP 400"):
            b.generate([bad], lambda pairs: None)
        b.close()
        assert len(srv.request_log) == 1


def test_on_result_exception_aborts_generation():
    class Stop(Exception):
        pass

    def on_result(pairs):
        raise Stop("store is full")

    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=1, concurrency=2)
        with pytest.raises(Stop):
            b.generate(_requests(20, 2), on_result)
        b.close()
        assert len(srv.request_log) < 40


def test_api_key_comes_from_the_environment_and_never_appears_in_describe(monkeypatch):
    monkeypatch.setenv("CAPCAL_TEST_SECRET_KEY", "sk-very-secret-123")
    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url, api_key_env="CAPCAL_TEST_SECRET_KEY")
        _collect(b, _requests(1, 1))
        desc = json.dumps(b.describe())
        b.close()
        assert srv.request_log[0]["auth"] == "Bearer sk-very-secret-123"
        with pytest.raises(ModelError, match="must not hold a user or password") as err:
            OpenAIBackend("stub-model", srv.base_url.replace("http://", "http://alice:hunter2@"))
        assert "hunter2" not in str(err.value)
    assert "sk-very-secret" not in desc
    assert json.loads(desc)["api_key_env"] == "CAPCAL_TEST_SECRET_KEY"
    assert json.loads(desc)["base_urls"] == [srv.base_url]


def test_model_name_from_the_server_and_invalid_arguments():
    with StubServer(model="served-model") as srv:
        b = OpenAIBackend(None, srv.base_url)
        assert b.model == "served-model" and b.describe()["model"] == "served-model"
        b.close()
    for kwargs, match in ((dict(mode="embeddings"), "mode"), (dict(concurrency=0), "concurrency"),
                          (dict(base_url="ftp://host/v1"), "not an http"), (dict(max_n="many"), "max_n"),
                          (dict(transport="curl"), "transport")):
        with pytest.raises(ModelError, match=match):
            OpenAIBackend("m", **{"base_url": "http://127.0.0.1:1/v1", **kwargs})
    with pytest.raises(ModelError, match="cannot reach"):
        OpenAIBackend(None, f"http://127.0.0.1:{_free_port()}/v1")


def test_built_through_the_registry_with_model_args():
    with StubServer() as a, StubServer() as b:
        args = parse_model_args(f'model=stub-model,base_url="{a.base_url},{b.base_url}",concurrency=5,max_n=2')
        be = get_registry().model("openai", **args)
        assert isinstance(be, OpenAIBackend)
        assert be.base_urls == [a.base_url, b.base_url] and be.concurrency == 5 and be.max_n == 2
        got, _ = _collect(be, _requests(2, 4))
        be.close()
    assert len(got) == 8


def test_generate_works_inside_a_running_event_loop():
    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url)

        async def main() -> list:
            got: list = []
            b.generate(_requests(2, 2), got.extend)
            return got

        assert len(asyncio.run(main())) == 4
        got, _ = _collect(b, _requests(1, 2, prefix="again"))  # the backend stays usable afterwards
        assert len(got) == 2
        b.close()


def test_a_slow_on_result_gets_bigger_batches_not_one_call_per_request():
    calls: list[int] = []

    def slow_store(pairs):
        time.sleep(0.02)  # an fsynced write
        calls.append(len(pairs))

    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=1, concurrency=8)
        b.generate(_requests(30, 2), slow_store)
        b.close()
        assert len(srv.request_log) == 60
    assert sum(calls) == 60 and len(calls) < 30 and max(calls) >= 4


# -- a server that caps n, server error bodies, server dialects ------------------------------------------------
def test_a_server_capping_n_gets_ceil_k_over_cap_requests_per_question():
    """k = 8 against a server that returns at most 3 choices: after its first short answer the backend asks
    for 3, 3 and 2, so every question costs exactly ceil(8 / 3) = 3 requests (not 1 + 7 single ones)."""
    with StubServer(max_n=3) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=8, concurrency=4)
        reqs = _requests(20, 8)
        got, prog = _collect(b, reqs)
        b.close()
        log = srv.request_log
    assert b.n_cap == 3 and b.n_honoured is False
    per_q = Counter(e["prompt"] for e in log)
    assert len(per_q) == 20 and set(per_q.values()) == {math.ceil(8 / 3)}
    assert len(log) == 20 * 3
    # only the requests sent before the first short answer came back asked for n = 8 (at most `concurrency`)
    assert sum(e["n"] == 8 for e in log) <= 4 and all(e["n"] in (8, 3, 2) for e in log)
    for r in reqs:
        entries = sorted((e for e in log if e["prompt"] == r.messages[-1]["content"]), key=lambda e: e["seed"])
        assert [e["seed"] for e in entries] == [r.seeds[0], r.seeds[3], r.seeds[6]]
        assert [min(e["n"], 3) for e in entries] == [3, 3, 2]
    by_id = dict(got)
    assert len(got) == len(by_id) == 160 and sum(prog) == 160
    # each sample carries the seed of the request that drew it
    assert [by_id[f"q5-s{j}"].seed for j in range(8)] == [5001] * 3 + [5022] * 3 + [5043] * 2


def test_a_200_carrying_an_error_object_quotes_the_server_and_is_not_retried():
    from stub_server import ERROR_200_MESSAGE

    with StubServer(faults=Faults(schedule=("error200",))) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, backoff_base=0.01)
        with pytest.raises(ModelError) as err:
            b.generate(_requests(1, 1), lambda pairs: None)
        b.close()
        assert len(srv.request_log) == 1
    msg = str(err.value)
    assert ERROR_200_MESSAGE in msg and "\n" not in msg and "KeyError" not in msg and "choices" not in msg
    assert "error in a 200 response" in msg


def test_server_error_messages_are_quoted():
    with StubServer(faults=Faults(rate_500=1.0, max_per_request=None)) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_retries=1, backoff_base=0.01)
        with pytest.raises(ModelError, match=r"giving up after 2 attempts: HTTP 500: internal error$"):
            b.generate(_requests(1, 1), lambda pairs: None)
        b.close()
    bad = GenerationRequest(messages=[{"role": "system", "content": "no user turn"}], params=SamplingParams(),
                            sample_ids=["x"], seeds=[1])
    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url)
        with pytest.raises(ModelError, match=r"HTTP 400: bad request: StopIteration"):
            b.generate([bad], lambda pairs: None)
        b.close()


def test_top_k_off_is_learned_from_the_first_validation_error():
    """A server whose validation wants top_k >= 0 (llama-cpp-python's) answers -1 with HTTP 500: the backend
    switches to 0 once, without backoff, and sends 0 from then on; an explicit top_k is never changed."""
    with StubServer(top_k_min=0) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, max_n=1, concurrency=1, backoff_base=5.0)
        t0 = time.monotonic()
        got, _ = _collect(b, _requests(3, 2))
        assert time.monotonic() - t0 < 4.0  # no backoff (5 s) was slept
        explicit = _requests(1, 1, SamplingParams(top_k=20, max_tokens=8), prefix="explicit")
        _collect(b, explicit)
        b.close()
        log = srv.request_log
    assert len(got) == 6
    assert [e["outcome"] for e in log].count("invalid") == 1 and log[0]["body"]["top_k"] == -1
    assert [e["body"]["top_k"] for e in log[1:]] == [0] * 6 + [20]
    assert b.describe()["top_k_off"] == 0


def test_a_validation_error_that_cannot_be_fixed_fails_at_once_with_the_message():
    with StubServer(top_k_min=0) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, top_k_off=-1, backoff_base=5.0)
        t0 = time.monotonic()
        with pytest.raises(ModelError, match=r"HTTP 500: .*top_k.*greater than or equal to 0") as err:
            b.generate(_requests(1, 1), lambda pairs: None)
        b.close()
        assert len(srv.request_log) == 1 and time.monotonic() - t0 < 4.0
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("owned_by", "dialect", "off"), [("vllm", "vllm", -1), ("sglang", "sglang", -1),
                                                           ("llamacpp", "llama.cpp", 0), ("someone", "generic", -1)])
def test_the_server_dialect_is_detected_from_models(owned_by, dialect, off):
    with StubServer(owned_by=owned_by) as srv:
        b = OpenAIBackend("stub-model", srv.base_url)
        _collect(b, _requests(1, 1))
        b.close()
        assert srv.request_log[0]["body"]["top_k"] == off
    assert b.dialect == dialect and b.describe()["server"] == dialect


@pytest.mark.parametrize(("owned_by", "field", "kwargs"), [
    ("llamacpp", "grammar", {}), ("vllm", "guided_grammar", {}), ("sglang", "ebnf", {}),
    ("vllm", "structured_outputs", {"grammar_field": "structured_outputs"}), ("someone", "grammar", {"server": "llama.cpp"}),
])
def test_a_grammar_goes_into_the_field_the_server_reads(owned_by, field, kwargs):
    if "grammar" not in SamplingParams.__dataclass_fields__:
        pytest.skip("SamplingParams has no grammar field in this version")
    grammar = 'root ::= "The answer is " [0-9]+ "."'
    params = SamplingParams(max_tokens=16, grammar=grammar)
    with StubServer(owned_by=owned_by) as srv:
        b = OpenAIBackend("stub-model", srv.base_url, **kwargs)
        _collect(b, _requests(1, 2, params))
        b.close()
        body = srv.request_log[0]["body"]
    sent = body[field]
    assert (sent == {"grammar": grammar}) if field == "structured_outputs" else (sent == grammar)
    assert not {"grammar", "guided_grammar", "ebnf", "structured_outputs"} - {field} & set(body)


def test_a_grammar_for_an_unknown_server_is_an_error_not_dropped():
    if "grammar" not in SamplingParams.__dataclass_fields__:
        pytest.skip("SamplingParams has no grammar field in this version")
    with StubServer(owned_by="someone") as srv:
        b = OpenAIBackend("stub-model", srv.base_url)
        with pytest.raises(ModelError, match="grammar_field="):
            b.generate(_requests(1, 1, SamplingParams(grammar='root ::= "x"')), lambda pairs: None)
        b.close()
        assert srv.request_log == []


def test_finish_reasons_are_normalised():
    from capcal.models.openai_backend import finish_reason_of

    assert finish_reason_of({"finish_reason": "stop"}) == "stop"
    assert finish_reason_of({"finish_reason": "length"}) == "length"
    assert finish_reason_of({"finish_reason": "eos"}) == "stop"
    assert finish_reason_of({"finish_reason": None, "message": {"content": "4"}}) == "stop"
    assert finish_reason_of({"finish_reason": "content_filter"}) == "content_filter"
    assert finish_reason_of({"finish_reason": "abort"}) == "error"
    assert finish_reason_of({"finish_reason": "stop", "error": {"message": "upstream died"}}) == "error"
    assert finish_reason_of({"finish_reason": "weird", "message": {"content": ""}}) == "error"
    with StubServer() as srv:
        b = OpenAIBackend("stub-model", srv.base_url)
        got = dict(_collect(b, _requests(1, 2, SamplingParams(max_tokens=2)))[0])
        b.close()
    assert {c.finish_reason for c in got.values()} == {"length"}


def test_error_message_reads_the_usual_error_bodies():
    from capcal.models.openai_backend import error_message

    assert error_message(b'{"error": {"message": "context length exceeded", "code": 400}}') == "context length exceeded"
    assert error_message(b'{"error": "model not loaded"}') == "model not loaded"
    assert error_message(b'{"detail": [{"loc": ["body", "top_k"], "msg": "Input should be >= 0"}]}') == \
        "top_k: Input should be >= 0"
    assert error_message(b'{"object": "error", "message": "n must be at most 4"}') == "n must be at most 4"
    assert error_message(b"<html>Bad Gateway</html>\n") == "<html>Bad Gateway</html>"
    assert len(error_message(b"x" * 1000)) == 300 and error_message(b"") == ""
