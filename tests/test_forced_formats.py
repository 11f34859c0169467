"""Forced answer formats: the grammars, the run option, and decoding under them.

The pipeline test runs ``capcal run --forced-format both`` against the real stub HTTP server (an
OpenAI-compatible server that does not decode under grammars, so the test checks what capcal sends and
records, not the constraint itself). The constraint itself is checked on the real SmolLM2 GGUF through the
in-process llama.cpp backend when llama-cpp-python is installed.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from capcal.errors import CapcalError
from capcal.estimators_contrib._verbalized_parse import parse_confidence
from capcal.forced_formats import (
    FINAL_MAX_CHARS,
    FORMATS,
    answer_grammar,
    check_mode,
    confidence_grammar,
    format_for_grader,
    free_char_budget,
    grammar,
)
from capcal.graders import BUILTIN_GRADERS
from capcal.pipeline import forced_twins
from capcal.runconfig import RunConfig
from run_fixtures import capcal
from stub_server import StubServer

# one final line per format that the grammar admits, and what the task's grader extracts from it
FINAL_LINES = {
    "letter": ("Answer: C) the third option", "multiple_choice", {"choices": ["a", "b", "c", "d"], "answer": "C"},
               "C"),
    "integer": ("The answer is 1,250.", "numeric", {"answer": "1250"}, "1250"),
    "boxed_integer": ("\\boxed{42}", "integer", {"answer": "42"}, "42"),
}


def test_grammars_have_free_lines_then_a_final_line():
    for fmt in FORMATS:
        g = grammar(fmt)
        assert g.startswith("root ::= free* final\n") and 'free ::= [^\\n]* "\\n"' in g
        assert "final ::= " in g and g.endswith("\n")
        assert grammar(fmt, free_lines=False).startswith("root ::= final\n")
    assert "letter ::= [ABCDE]" in grammar("letter", letters="ABCDE")
    assert 'final ::= "\\\\boxed{" prob "}"' in grammar("probability")
    with pytest.raises(CapcalError, match="unknown forced format"):
        grammar("json")
    with pytest.raises(CapcalError, match="upper-case single letters"):
        grammar("letter", letters=["A", "bb"])


def test_short_replies_bound_the_free_text_so_the_final_line_fits():
    assert free_char_budget("letter", 32) == 32 - 2 - FINAL_MAX_CHARS["letter"] == 20
    assert free_char_budget("probability", 10) == 0 and free_char_budget("integer", 512) is None
    g = answer_grammar("multiple_choice", 4, 32)
    assert g.startswith('root ::= (text "\\n")? final\n') and "{0,20}" in g
    assert confidence_grammar(10).startswith("root ::= final\n")  # no room for free text at all
    assert answer_grammar("numeric", max_tokens=512) == grammar("integer")
    # the final lines' longest forms, as the grammar spells them
    assert len("Answer: D)") == FINAL_MAX_CHARS["letter"]
    assert len("The answer is -" + "1" * 15 + ".") == FINAL_MAX_CHARS["integer"]
    assert len("\\boxed{-123456}.") == FINAL_MAX_CHARS["boxed_integer"]
    assert len("\\boxed{0.125}") == FINAL_MAX_CHARS["probability"]


@pytest.mark.model
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_llama_cpp_grammar_always_ends_with_a_final_line_within_max_tokens():
    """Real llama.cpp (its own grammar sampler) on the SmolLM2 GGUF, at T = 1 untruncated, where SmolLM2
    would otherwise ramble: every completion stops with a final line, before the token limit."""
    import llama_cpp
    from capcal.models.model_files import resolve_model_file

    lm = llama_cpp.Llama(model_path=str(resolve_model_file("smollm2-135m")), n_ctx=512, n_threads=1, verbose=False)
    prompt = [{"role": "user", "content": "Which planet is largest? A) Mars B) Jupiter C) Venus D) Earth. "
                                          "Tell me everything you know about each."}]
    for g, mt, pattern in ((answer_grammar("multiple_choice", 4, 16), 16, r"Answer: [ABCD][).]?"),
                           (confidence_grammar(20), 20, r"\\boxed\{(0|1|1\.0|1\.00|0\.\d{1,3})\}")):
        for seed in range(2):
            out = lm.create_chat_completion(prompt, grammar=llama_cpp.LlamaGrammar.from_string(g, verbose=False),
                                            max_tokens=mt, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0,
                                            seed=seed)
            choice = out["choices"][0]
            assert choice["finish_reason"] == "stop", choice
            assert re.fullmatch(pattern, choice["message"]["content"].splitlines()[-1]), choice
    lm.close()


def test_each_final_line_is_what_the_task_grader_parses():
    for fmt, (line, grader_name, fields, expected) in FINAL_LINES.items():
        assert format_for_grader(grader_name) == fmt
        grader = BUILTIN_GRADERS[grader_name]()
        result = grader.grade(f"Some free reasoning.\nMore of it: 12 and 7.\n{line}", fields)
        assert result.extracted is not None and result.correct, (fmt, result)
        assert str(result.extracted).replace(",", "") == expected
    assert parse_confidence("I think it is likely.\n\\boxed{0.85}") == pytest.approx(0.85)
    assert format_for_grader("short_answer") is None and answer_grammar("math") is None
    assert "letter ::= [AB]" in answer_grammar("multiple_choice", n_choices=2)


def test_mode_validation_and_verbalized_twins():
    assert check_mode(" Both ") == "both"
    with pytest.raises(CapcalError, match="--forced-format 'always'"):
        RunConfig(output="x", tasks=["mmlu"], forced_format="always").validate()
    assert forced_twins(["verbalized", "ptrue", "verbalized:retries=1", "verbalized:forced=false"]) == [
        "verbalized", "verbalized:forced=true", "ptrue", "verbalized:retries=1", "verbalized:retries=1:forced=true",
        "verbalized:forced=false"]
    assert forced_twins(["verbalized", "verbalized:forced=true"]) == ["verbalized", "verbalized:forced=true"]


def _body(entry):
    body = entry.get("body") or {}
    return json.loads(body) if isinstance(body, str) else body


def test_run_both_draws_a_forced_copy_and_reports_parse_rates_side_by_side(tmp_path, data_dir):
    out = tmp_path / "run"
    with StubServer(honour_n=False) as srv:
        proc = capcal("run", "--model", "openai",
                      "--model_args", f"base_url={srv.base_url},model=stub,server=llama.cpp",
                      "--tasks", "gsm8k", "--limit", "3", "--k", "2", "--estimators", "verbalized",
                      "--forced-format", "both", "--data-dir", str(data_dir), "--output", str(out), "--no-progress")
        log = srv.request_log
    assert proc.returncode == 0, proc.stderr[-2000:]
    bodies = [_body(e) for e in log if e.get("outcome") == "ok"]
    with_grammar = [b for b in bodies if "grammar" in b]
    answers = [b for b in with_grammar if 'The answer is ' in b["grammar"]]
    confidences = [b for b in with_grammar if "boxed" in b["grammar"]]
    # 3 x 2 forced answer samples (one request each: the server ignores n); the stub's replies do not depend
    # on the grammar, so the forced verbalized row asks (and retries) exactly as often as the free one
    assert len(answers) == 6 and len(confidences) >= 3
    assert len(bodies) - len(with_grammar) == 6 + len(confidences)
    assert answers[0]["grammar"] == grammar("integer")  # gsm8k's long replies: free lines unbounded
    assert confidences[0]["grammar"] == confidence_grammar(20)  # 20 tokens: the free text is bounded
    free_rows = [json.loads(x) for x in (out / "tasks/gsm8k/targets.jsonl").read_text().splitlines()]
    forced_rows = [json.loads(x) for x in (out / "tasks/gsm8k/splits/forced/targets.jsonl").read_text().splitlines()]
    assert [r["id"] for r in free_rows] == [r["id"] for r in forced_rows]
    assert not set(free_rows[0]["sample_keys"]) & set(forced_rows[0]["sample_keys"])
    record = json.loads((out / "tasks/gsm8k/forced_format.json").read_text())
    for side, rows in (("free", free_rows), ("forced", forced_rows)):
        extracted = [e for r in rows for e in r["extracted"]]
        assert record[side]["n_samples"] == 6
        assert record[side]["answer_parse_rate"] == sum(e is not None for e in extracted) / 6
    config = json.loads((out / "config.json").read_text())
    assert config["forced_format"] == "both"
    assert config["estimators"] == ["verbalized", "verbalized:forced=true"]
    assert "grammar" not in config["tasks"]["gsm8k"]["sampling"]  # the samples that define mu are free
    meta = json.loads((out / "tasks/gsm8k/estimators/verbalized:forced=true.meta.json").read_text())
    assert meta["forced"] is True
    line = next(x for x in proc.stdout.splitlines() if x.startswith("gsm8k: answer parse rate"))
    assert re.search(r"free \d\.\d{3}  forced \d\.\d{3}", line)
    assert any(x.startswith("gsm8k: verbalized parse rate  free ") for x in proc.stdout.splitlines())


def test_run_on_puts_the_grammar_on_every_sample(tmp_path, data_dir):
    out = tmp_path / "run"
    with StubServer(honour_n=True) as srv:
        proc = capcal("run", "--model", "openai",
                      "--model_args", f"base_url={srv.base_url},model=stub,server=llama.cpp",
                      "--tasks", "mmlu", "--limit", "2", "--k", "2", "--forced-format", "on",
                      "--data-dir", str(data_dir), "--output", str(out), "--no-progress")
        bodies = [_body(e) for e in srv.request_log if e.get("outcome") == "ok"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert bodies and all(b.get("grammar") == answer_grammar("multiple_choice", 4, 32) for b in bodies)
    config = json.loads((out / "config.json").read_text())
    assert config["tasks"]["mmlu"]["sampling"]["grammar"] == answer_grammar("multiple_choice", 4, 32)


def test_transformers_backend_refuses_forced_formats_in_one_line(tmp_path, data_dir):
    proc = capcal("run", "--model", "hf", "--model_args", "model=none", "--tasks", "mmlu", "--limit", "1",
                  "--forced-format", "sometimes", "--output", str(tmp_path / "r"))
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and proc.stderr.count("\n") == 1


def _has_llamacpp_backend() -> bool:
    from capcal.registry import get_registry

    return importlib.util.find_spec("llama_cpp") is not None and "llamacpp" in get_registry().models


@pytest.mark.model
@pytest.mark.skipif(not _has_llamacpp_backend(), reason="the llamacpp backend or llama-cpp-python is not installed")
def test_llamacpp_decodes_every_mmlu_sample_into_a_letter(tmp_path, data_dir):
    """Real SmolLM2 GGUF in process: every forced sample ends with a parseable final line."""
    out = tmp_path / "run"
    proc = capcal("run", "--model", "llamacpp", "--model_args", "model=smollm2-135m", "--tasks", "mmlu",
                  "--limit", "3", "--k", "2", "--estimators", "verbalized", "--forced-format", "both",
                  "--max-tokens", "48", "--data-dir", str(data_dir), "--output", str(out), "--no-progress",
                  timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    forced_rows = [json.loads(x) for x in (out / "tasks/mmlu/splits/forced/targets.jsonl").read_text().splitlines()]
    from capcal.store import SampleStore

    with SampleStore(out / "samples.sqlite") as store:
        stored = store.get_many(k for r in forced_rows for k in r["sample_keys"])
    for row in forced_rows:
        for key, extracted in zip(row["sample_keys"], row["extracted"], strict=True):
            comp = stored[key]
            if comp.get("finish_reason") == "length":
                continue  # ran out of tokens before the final line: allowed, counted as unparsed
            assert re.fullmatch(r"Answer: [ABCD]([).:].*)?", comp["text"].rstrip("\n").splitlines()[-1]), comp["text"]
            assert extracted in "ABCD"
    meta = json.loads((out / "tasks/mmlu/estimators/verbalized:forced=true.meta.json").read_text())
    assert meta["forced"] is True and meta["parse_rate"] == 1.0
