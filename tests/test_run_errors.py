"""Bad input to ``capcal run`` gives one clear line on stderr and exit code 2, never a traceback (issue 3, 6)."""

from __future__ import annotations

import socket

import pytest
from capcal.errors import CapcalError, UnknownNameError
from capcal.pipeline import run
from capcal.runconfig import RunConfig, derive_seed, is_secret_name, redact_secrets
from run_fixtures import capcal


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_malformed_model_args(tmp_path, data_dir):
    proc = capcal("run", "--model", "openai", "--model_args", "base_url", "--tasks", "gsm8k",
                  "--data-dir", str(data_dir), "--output", str(tmp_path / "r"))
    _one_line_error(proc, "malformed --model_args", "'base_url' is not key=value")
    assert not (tmp_path / "r").exists()  # nothing written for a command that cannot run


def test_unknown_model_name_names_close_matches(tmp_path, data_dir):
    proc = capcal("run", "--model", "opneai", "--tasks", "gsm8k", "--data-dir", str(data_dir),
                  "--output", str(tmp_path / "r"))
    _one_line_error(proc, "unknown model 'opneai'", "'openai'")
    assert not (tmp_path / "r").exists()


def test_unknown_model_arg(tmp_path, data_dir):
    proc = capcal("run", "--model", "openai", "--model_args", "base_url=http://127.0.0.1:9/v1,modle=x",
                  "--tasks", "gsm8k", "--limit", "1", "--data-dir", str(data_dir), "--output", str(tmp_path / "r"))
    _one_line_error(proc, "modle")


def test_unreachable_server(tmp_path, data_dir):
    port = _free_port()  # nothing listens there
    proc = capcal("run", "--model", "openai", "--model_args",
                  f"base_url=http://127.0.0.1:{port}/v1,model=stub,unreachable_after=1,backoff_base=0.05,"
                  "backoff_max=0.2", "--tasks", "gsm8k", "--k", "2", "--limit", "2",
                  "--data-dir", str(data_dir), "--output", str(tmp_path / "r"), timeout=120)
    _one_line_error(proc, f"127.0.0.1:{port}")


def test_task_name_typo(tmp_path, data_dir):
    proc = capcal("run", "--tasks", "gsm8k,trivaqa", "--data-dir", str(data_dir), "--output", str(tmp_path / "r"))
    _one_line_error(proc, "unknown task 'trivaqa'", "did you mean 'triviaqa'")


def test_unwritable_output_directory(tmp_path, data_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = capcal("run", "--model", "openai", "--model_args", "base_url=http://127.0.0.1:9/v1,model=stub",
                  "--tasks", "gsm8k", "--data-dir", str(data_dir), "--output", str(blocker / "run"))
    _one_line_error(proc, "not writable", str(blocker / "run"))


@pytest.mark.parametrize("argv, needle", [
    (["--k", "zero"], "argument --k: invalid int value"),
    (["--k", "0"], "--k 0: expected an integer >= 1"),
    (["--k", "4", "--designated", "4"], "--designated 4 must be smaller than --k 4"),
    (["--top-p", "1.5"], "--top-p 1.5: expected a number in (0, 1]"),
    (["--temperature", "-1"], "--temperature -1.0: expected a number >= 0"),
    (["--estimators", "consistncy"], "unknown estimator 'consistncy'"),
    (["--suite", "capcal-v0"], "unknown suite 'capcal-v0'"),
])
def test_bad_settings(tmp_path, data_dir, argv, needle):
    proc = capcal("run", "--tasks", "gsm8k", *argv, "--data-dir", str(data_dir), "--output", str(tmp_path / "r"))
    _one_line_error(proc, needle)


def test_no_tasks_library_error(tmp_path):
    with pytest.raises(CapcalError, match="no tasks"):
        run(RunConfig(output=tmp_path / "r"))
    with pytest.raises(UnknownNameError, match="did you mean 'gsm8k'"):
        run(RunConfig(output=tmp_path / "r", tasks=["gsm8"], model="openai"))


def test_secrets_are_redacted():
    cfg = {"model_args": {"base_url": "https://user:hunter2@example.org:8443/v1", "api_key": "sk-1",
                          "OPENAI_API_KEY": "sk-2", "auth_token": "t", "client_secret": "s", "max_tokens": 5,
                          "tokenizer": "tok", "top_k": 3, "headers": {"Authorization": "Bearer x", "X-Ok": "1"}}}
    out = redact_secrets(cfg)["model_args"]
    assert out == {"base_url": "https://example.org:8443/v1", "max_tokens": 5, "tokenizer": "tok", "top_k": 3,
                   "headers": {"X-Ok": "1"}}
    assert is_secret_name("api_key") and is_secret_name("hf_token") and not is_secret_name("max_new_tokens")


def test_derive_seed_is_a_pure_function_of_its_inputs():
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"7:q-12:3").digest()[:8], "big") % 2**31
    assert derive_seed(7, "q-12", 3) == expected
    seeds = {derive_seed(0, q, j) for q in ("a", "b", "c") for j in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**31 for s in seeds)
