"""The optional llm_judge grader against a tiny real OpenAI-compatible HTTP server.

The server below is a stand-in for a remote judge API (a mock allowed in this form): a real aiohttp
application on 127.0.0.1, started inside the test, that answers /v1/chat/completions with "CORRECT" when the
"Predicted answer:" line of the judge prompt names the gold target, "NOT_ATTEMPTED" when it says "I don't
know", and "INCORRECT" otherwise. It records every request so the test can check what the grader sent.
"""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from aiohttp import web
from capcal.errors import CapcalError, ModelError
from capcal.graders import BUILTIN_GRADERS, GraderOptionError
from capcal.graders.judge import parse_verdict


class JudgeServer:
    def __init__(self):
        self.requests: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.port = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("Authorization")})
        prompt = body["messages"][-1]["content"]
        gold = re.search(r"^Gold target: (.*)$", prompt, re.M).group(1)
        pred = re.search(r"^Predicted answer: (.*)$", prompt, re.M).group(1)
        if "don't know" in pred:
            verdict = "NOT_ATTEMPTED"
        elif gold.split(" (also")[0].lower() in pred.lower():
            verdict = "CORRECT"
        else:
            verdict = "INCORRECT"
        return web.json_response({
            "id": "judge-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": verdict}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def _run(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._runner = runner
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture()
def server():
    with JudgeServer() as srv:
        yield srv


def test_judge_grades_through_the_endpoint(server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test-123")
    judge = BUILTIN_GRADERS["llm_judge"](base_url=f"http://127.0.0.1:{server.port}/v1", model="judge-model",
                                         api_key_env="JUDGE_KEY")
    fields = {"question": "Who received the IEEE Frank Rosenblatt Award in 2010?", "answer": "Michio Sugeno",
              "aliases": ["Michio Sugeno", "M. Sugeno"]}
    good = judge.grade("Answer: It was Michio Sugeno, I believe.", fields)
    bad = judge.grade("Answer: Lotfi Zadeh", fields)
    unsure = judge.grade("Answer: I don't know", fields)
    assert (good.correct, bad.correct, unsure.correct) == (True, False, False)
    assert good.extracted == "It was Michio Sugeno, I believe"     # the fallback (short_answer) extracts
    assert set(judge.verdicts.values()) == {"CORRECT", "INCORRECT", "NOT_ATTEMPTED"}
    assert len(server.requests) == 3
    first = server.requests[0]
    assert first["auth"] == "Bearer sk-test-123"
    assert first["body"]["model"] == "judge-model" and first["body"]["temperature"] == 0
    assert "Question: Who received the IEEE Frank Rosenblatt Award in 2010?" in first["body"]["messages"][0]["content"]
    assert "also accepted: M. Sugeno" in first["body"]["messages"][0]["content"]

    # cached: the same question/response is not sent twice; an empty response is never sent
    judge.grade("Answer: It was Michio Sugeno, I believe.", fields)
    empty = judge.grade("   ", fields)
    assert empty.extracted is None and not empty.correct
    assert len(server.requests) == 3


def test_judge_wraps_another_fallback(server):
    judge = BUILTIN_GRADERS["llm_judge"](base_url=f"http://127.0.0.1:{server.port}/v1", model="m",
                                         fallback="math")
    assert judge.extract("so \\boxed{\\frac12}") == "\\frac12"
    assert judge.equivalent("\\frac{1}{2}", "0.5")
    assert judge.grade("so \\boxed{7}", {"question": "q", "answer": "7"}).correct
    assert not judge.grade("so \\boxed{8}", {"question": "q", "answer": "7"}).correct


def test_unreachable_endpoint_is_a_one_line_model_error():
    judge = BUILTIN_GRADERS["llm_judge"](base_url="http://127.0.0.1:9/v1", model="m", timeout=2, max_retries=0)
    with pytest.raises(ModelError) as info:
        judge.grade("Answer: Paris", {"question": "q", "answer": "Paris"})
    assert "llm_judge" in str(info.value) and "\n" not in str(info.value)


def test_judge_needs_an_endpoint():
    with pytest.raises(GraderOptionError, match="base_url and model"):
        BUILTIN_GRADERS["llm_judge"]()
    with pytest.raises(CapcalError, match="unknown grader"):
        BUILTIN_GRADERS["llm_judge"](base_url="http://x/v1", model="m", fallback="nope")


@pytest.mark.parametrize("reply, verdict", [
    ("CORRECT", "CORRECT"), ("INCORRECT", "INCORRECT"), ("NOT_ATTEMPTED", "NOT_ATTEMPTED"),
    ("Grade: not attempted.", "NOT_ATTEMPTED"), ("incorrect", "INCORRECT"), ("A", "CORRECT"), ("B", "INCORRECT"),
    ("C", "NOT_ATTEMPTED"), ("maybe", None), ("", None),
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict
