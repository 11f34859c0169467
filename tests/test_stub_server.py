"""The fault-injecting OpenAI-compatible stub server, exercised over real HTTP with the standard library."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import time
from collections import Counter

import pytest
from stub_server import DEFAULT_CANDIDATES, Faults, StubServer, spawn_server


def _post(port: int, path: str, body: dict | bytes, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """POST with http.client; returns (status, lower-cased headers, raw body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json",
                                                       "Authorization": "Bearer t0ken"})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _chat(prompt: str = "What is 6 * 7?", **kw) -> dict:
    return {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": prompt}], **kw}


def _expected_answer(prompt: str, seed: int, index: int) -> str:
    """The documented answer rule, computed independently of the server code."""
    h = int.from_bytes(hashlib.sha256(f"{prompt}\x1f{seed}\x1f{index}".encode()).digest()[:8], "big")
    return DEFAULT_CANDIDATES[h % len(DEFAULT_CANDIDATES)]


@pytest.fixture(scope="module")
def srv():
    with StubServer() as s:
        yield s


def test_chat_answers_follow_the_documented_table_and_honour_n(srv):
    status, _, raw = _post(srv.port, "/v1/chat/completions", _chat(seed=11, n=3))
    assert status == 200
    data = json.loads(raw)
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert [c["message"]["content"] for c in data["choices"]] == [_expected_answer("What is 6 * 7?", 11, i)
                                                                   for i in range(3)]
    assert all(c["finish_reason"] == "stop" and c["logprobs"] is None for c in data["choices"])
    # the same seed gives the same answer; seeds spread over the candidates
    again = json.loads(_post(srv.port, "/v1/chat/completions", _chat(seed=11, n=1))[2])
    assert again["choices"][0]["message"]["content"] == data["choices"][0]["message"]["content"]
    answers = {json.loads(_post(srv.port, "/v1/chat/completions", _chat(seed=s))[2])["choices"][0]["message"]["content"]
               for s in range(24)}
    assert len(answers) >= 3


def test_n_ignored_mode_returns_one_choice():
    with StubServer(honour_n=False) as s:
        data = json.loads(_post(s.port, "/v1/chat/completions", _chat(seed=5, n=4))[2])
        assert len(data["choices"]) == 1
        assert s.request_log[0]["n"] == 4 and s.request_log[0]["choices"] == 1


def test_chat_logprobs_and_max_tokens(srv):
    data = json.loads(_post(srv.port, "/v1/chat/completions",
                            _chat(seed=3, logprobs=True, top_logprobs=3, max_tokens=2))[2])
    ch = data["choices"][0]
    assert ch["finish_reason"] == "length"
    content = ch["logprobs"]["content"]
    assert len(content) == 2 and "".join(e["token"] for e in content) == ch["message"]["content"]
    for e in content:
        assert [t["token"] for t in e["top_logprobs"]] == [e["token"], e["token"] + "~1", e["token"] + "~2"]
        assert [t["logprob"] for t in e["top_logprobs"]] == pytest.approx([e["logprob"] - r for r in range(3)])
        assert -2.0 < e["logprob"] <= 0.0


def test_completions_endpoint_and_its_logprobs_format(srv):
    status, _, raw = _post(srv.port, "/v1/completions", {"model": "m", "prompt": "Q: 1+1?", "seed": 2, "n": 2,
                                                        "logprobs": 2})
    assert status == 200
    data = json.loads(raw)
    assert data["object"] == "text_completion"
    for i, ch in enumerate(data["choices"]):
        assert ch["text"] == _expected_answer("Q: 1+1?", 2, i)
        lp = ch["logprobs"]
        assert "".join(lp["tokens"]) == ch["text"]
        assert len(lp["token_logprobs"]) == len(lp["tokens"]) == len(lp["top_logprobs"])
        assert lp["text_offset"][0] == 0
        assert all(len(d) == 2 for d in lp["top_logprobs"])


def test_models_endpoint_and_bad_request(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/v1/models")
    models = json.loads(conn.getresponse().read())
    conn.close()
    assert models["data"][0]["id"] == "stub-model"
    status, _, raw = _post(srv.port, "/v1/chat/completions", b"{not json")
    assert status == 400 and "error" in json.loads(raw)
    assert srv.request_log[-1]["outcome"] == "bad_request"


@pytest.mark.parametrize("mode", ["field", "think"])
def test_reasoning_modes(mode):
    with StubServer(reasoning=mode) as s:
        msg = json.loads(_post(s.port, "/v1/chat/completions", _chat(seed=1, logprobs=True))[2])["choices"][0]
        answer = _expected_answer("What is 6 * 7?", 1, 0)
        if mode == "field":
            assert msg["message"]["content"] == answer
            assert msg["message"]["reasoning_content"].startswith("Thinking about")
        else:
            content = msg["message"]["content"]
            assert content.startswith("<think>Thinking about") and content.endswith("</think>\n" + answer)
            assert "".join(e["token"] for e in msg["logprobs"]["content"]) == content


def test_every_fault_mode_on_the_wire():
    faults = Faults(schedule=("429", "500", "truncate", "drop", "stall", "ok"), retry_after=1.5, stall_s=3.0)
    with StubServer(faults=faults) as s:
        status, headers, _ = _post(s.port, "/v1/chat/completions", _chat(seed=1))
        assert status == 429 and headers["retry-after"] == "2" and headers["retry-after-ms"] == "1500"
        assert _post(s.port, "/v1/chat/completions", _chat(seed=1))[0] == 500
        status, _, raw = _post(s.port, "/v1/chat/completions", _chat(seed=1))
        assert status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            _post(s.port, "/v1/chat/completions", _chat(seed=1))
        t0 = time.monotonic()
        with pytest.raises((TimeoutError, socket.timeout)):
            _post(s.port, "/v1/chat/completions", _chat(seed=1), timeout=0.5)
        assert time.monotonic() - t0 < 2.5
        assert _post(s.port, "/v1/chat/completions", _chat(seed=1))[0] == 200
        log = s.request_log
        assert [e["outcome"] for e in log] == ["429", "500", "truncate", "drop", "stall", "ok"]
        assert [e["attempt"] for e in log] == list(range(6))  # the same body, arriving again and again
        assert all(e["auth"] == "Bearer t0ken" and e["seed"] == 1 for e in log)


def test_fault_draws_are_deterministic_bounded_and_follow_the_rates():
    faults = Faults(rate_429=0.2, rate_500=0.1, rate_drop=0.1, rate_truncate=0.1, seed=7, max_per_request=1)
    bodies = [json.dumps(_chat(f"q{i}", seed=i)).encode() for i in range(2000)]
    first = [faults.draw(b, 0) for b in bodies]
    assert first == [faults.draw(b, 0) for b in bodies]  # a pure function of (seed, body, attempt)
    assert first != [Faults(rate_429=0.2, rate_500=0.1, rate_drop=0.1, rate_truncate=0.1, seed=8).draw(b, 0)
                     for b in bodies]
    counts = Counter(first)
    for outcome, rate in (("429", 0.2), ("500", 0.1), ("drop", 0.1), ("truncate", 0.1), ("ok", 0.5)):
        sd = (2000 * rate * (1 - rate)) ** 0.5
        assert abs(counts[outcome] - 2000 * rate) < 4 * sd, (outcome, counts)
    assert all(faults.draw(b, 1) == "ok" for b in bodies)  # at most max_per_request faults per body
    unlimited = Faults(rate_500=1.0, max_per_request=None)
    assert all(unlimited.draw(bodies[0], a) == "500" for a in range(50))


def test_fault_settings_are_validated():
    with pytest.raises(ValueError, match="sum to at most 1"):
        Faults(rate_429=0.7, rate_500=0.5)
    with pytest.raises(ValueError, match="unknown outcome"):
        Faults(schedule=("ok", "boom"))
    with pytest.raises(ValueError, match="reasoning"):
        StubServer(reasoning="thoughts")


def test_same_faults_over_http_regardless_of_arrival_order():
    faults = Faults(rate_429=0.3, rate_500=0.3, seed=3, max_per_request=None)
    bodies = [_chat(f"question {i}", seed=i) for i in range(30)]
    outcomes = []
    for order in (bodies, bodies[::-1]):
        with StubServer(faults=faults) as s:
            for b in order:
                _post(s.port, "/v1/chat/completions", b)
            outcomes.append({e["prompt"]: e["outcome"] for e in s.request_log})
    assert outcomes[0] == outcomes[1]
    assert {"429", "500", "ok"} <= set(outcomes[0].values())


def test_subprocess_server_serves_and_exposes_its_log(tmp_path):
    log_path = tmp_path / "requests.jsonl"
    with spawn_server(Faults(schedule=("500",)), honour_n=False, log_path=str(log_path)) as s:
        assert s.process.poll() is None
        assert _post(s.port, "/v1/chat/completions", _chat(seed=4, n=2))[0] == 500
        status, _, raw = _post(s.port, "/v1/chat/completions", _chat(seed=4, n=2))
        assert status == 200 and len(json.loads(raw)["choices"]) == 1
        assert [e["outcome"] for e in s.request_log] == ["500", "ok"]
        proc = s.process
    assert proc.poll() is not None  # stopped on exit
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [e["outcome"] for e in lines] == ["500", "ok"] and lines[1]["n"] == 2
