"""Acceptance 7: ``capcal grade`` (the real command, in a subprocess) on the Qwen2.5-Math generations,
converted to its input format, reproduces the agreement of the math grader with the stored labels."""

from __future__ import annotations

import json
import subprocess
import sys

from capcal.graders import BUILTIN_GRADERS
from graders_fixtures import load_qwen_math, to_grade_input


def _capcal(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capcal", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_capcal_grade_reproduces_math_agreement(data_dir, tmp_path, capsys):
    rows = load_qwen_math(data_dir)
    lines = to_grade_input(rows)
    src = tmp_path / "responses.jsonl"
    src.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "graded.jsonl"

    proc = _capcal("grade", "--task", "math500", "--responses", str(src), "--output", str(out),
                   "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    graded = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(graded) == 800
    # every input key is carried through, in order, and the verdicts are added
    assert [(g["doc"], g["response"], g["sample"]) for g in graded] == \
        [(x["doc"], x["response"], x["sample"]) for x in lines]
    agree = sum(g["correct"] == g["label"] for g in graded)
    correct = sum(g["correct"] for g in graded)
    unparseable = sum(g["extracted"] is None for g in graded)
    assert proc.stderr.strip().splitlines()[-1] == f"rows=800 correct={correct} unparseable={unparseable}"
    with capsys.disabled():
        print(f"\ncapcal grade: {agree}/800 = {agree / 8:.2f}% agreement with the stored labels; "
              f"stderr: {proc.stderr.strip()}")
    assert agree / 800 >= 0.97

    # the same verdicts as the grader called in-process (line 4 of the acceptance list)
    grader = BUILTIN_GRADERS["math"]()
    direct = [grader.grade(x["response"], {"answer": x["doc"]["answer"]}).correct for x in lines]
    assert [g["correct"] for g in graded] == direct


def test_capcal_grade_by_index_to_stdout(data_dir, tmp_path):
    """Lines given by ``index`` of the eval split; a list of responses; output on stdout."""
    src = tmp_path / "by_index.jsonl"
    src.write_text(
        json.dumps({"index": 0, "response": "So $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$."}) + "\n\n"
        + json.dumps({"index": 1, "response": ["I am not sure.\nNo idea.", "\\boxed{0}"], "id": "x"}) + "\n",
        encoding="utf-8")
    proc = _capcal("grade", "--task", "math500", "--responses", str(src), "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    first, second = [json.loads(line) for line in proc.stdout.splitlines()]
    assert first["correct"] is True and first["extracted"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert second["extracted"] == [None, "0"] and second["correct"] == [False, False] and second["id"] == "x"
    assert proc.stderr.strip() == "rows=3 correct=1 unparseable=1"


def test_capcal_grade_errors_are_one_line(data_dir, tmp_path):
    cases = {
        "missing.jsonl": None,
        "notjson.jsonl": "{not json\n",
        "noresponse.jsonl": json.dumps({"index": 0}) + "\n",
        "nodoc.jsonl": json.dumps({"response": "x"}) + "\n",
        "range.jsonl": json.dumps({"index": 10**6, "response": "x"}) + "\n",
        "badcols.jsonl": json.dumps({"doc": {"question": "q"}, "response": "x"}) + "\n",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content, encoding="utf-8")
        proc = _capcal("grade", "--task", "math500", "--responses", str(path), "--data-dir", str(data_dir))
        assert proc.returncode == 2, (name, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("capcal: error:"), (name, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = _capcal("grade", "--task", "math5000", "--responses", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 2 and "math500" in proc.stderr and "Traceback" not in proc.stderr
