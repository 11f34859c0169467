"""What a newcomer following the docs runs into: help texts and the one-line messages for common mistakes.

Each test pins a message or help text that the walkthrough of README.md and docs/ found unclear or wrong.
"""

from __future__ import annotations

import pytest
from capcal.cli import build_parser, main
from capcal.errors import CapcalError
from capcal.pipeline import run
from capcal.runconfig import RunConfig


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # the subparsers action
    return sub.choices[command].format_help()


@pytest.mark.parametrize("command", ["run", "leaderboard", "compare"])
def test_descriptions_are_wrapped_and_epilogs_kept(command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    text = _help(command)
    assert max(len(line) for line in text.splitlines()) <= 110  # epilog example lines are kept as written
    description = text.split("\n\n")[1]
    assert all(len(line) <= 80 for line in description.splitlines()), description
    assert "examples:\n  capcal " + command in text  # the epilog's layout survives


def test_leaderboard_help_has_no_escaped_percent():
    text = _help("leaderboard")
    assert "%%" not in text
    assert "95% bootstrap" in " ".join(text.split())


@pytest.mark.parametrize("command", ["show", "grade"])
def test_data_dir_spelled_as_in_run(command):
    text = _help(command)
    assert "--data-dir DIR" in text and "--data_dir DIR" in text
    assert "--data-dir DATA_DIR" not in text


def test_estimator_parameter_typo_names_the_accepted_parameters(tmp_path, data_dir):
    cfg = RunConfig(output=tmp_path / "r", tasks=["gsm8k"], limit=1, k=1, data_dir=data_dir,
                    estimators=["consistency:mm=3"])
    with pytest.raises(CapcalError) as info:
        run(cfg)
    msg = str(info.value)
    assert "\n" not in msg
    assert "--estimators 'consistency:mm=3': unknown parameter 'mm' of estimator 'consistency'" in msg
    assert "did you mean 'm'?" in msg
    assert "expected one of: m, mode, reuse_samples" in msg
    assert "__init__" not in msg
    assert not (tmp_path / "r").exists()


def test_estimator_parameter_bad_value_still_reported(tmp_path, data_dir):
    cfg = RunConfig(output=tmp_path / "r", tasks=["gsm8k"], limit=1, k=1, data_dir=data_dir,
                    estimators=["recalibrated:method=isotonik"])
    with pytest.raises(CapcalError) as info:
        run(cfg)
    assert "\n" not in str(info.value)
    assert "'isotonik'" in str(info.value) and "isotonic" in str(info.value)


def test_leaderboard_metric_typo_suggests_and_lists(capsys):
    assert main(["leaderboard", "runs/does-not-matter", "--metrics", "cc_brierr"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown metric 'cc_brierr'" in err and "did you mean 'cc_brier'" in err
    assert "passk_mse@K" in err
