"""The configuration of one run (:class:`RunConfig`): what ``capcal run`` parses and ``capcal.run`` takes.

Everything here is plain data plus validation; resolving against tasks and suites happens in
:mod:`capcal.pipeline`. Also home of the two small recipes that the pipeline and the tests share:
:func:`derive_seed` (per-sample seeds) and :func:`redact_secrets` (what ``config.json`` may contain).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .defaults import DEFAULT_K, DEFAULT_MAX_TOKENS  # noqa: F401 - re-exported: callers read them here
from .errors import CapcalError

#: Questions per split sampled for learned estimators (probes, recalibrators) unless ``train_limit`` says.
DEFAULT_TRAIN_LIMIT = 200

_SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|credential|auth)", re.IGNORECASE)
# names that contain "token" or "key" but are settings, not secrets
_NOT_SECRET = re.compile(r"^((max|min|num|n)_(new_|gen_|completion_)?(tokens|toks)|tokenizer\w*|top_k|sort_keys)$",
                         re.IGNORECASE)


def derive_seed(run_seed: int, question_id: str, index: int) -> int:
    """The seed of one sample: a function of (run seed, question id, sample index) only.

    Returns:
        An integer in ``[0, 2**31 - 1]`` (fits every backend's seed type): the first 8 bytes of
        ``sha256(f"{run_seed}:{question_id}:{index}")`` as a big-endian integer, modulo ``2**31``. The
        same triple gives the same seed in every process; the order in which samples are drawn, the
        concurrency and resuming never change it.
    """
    digest = hashlib.sha256(f"{int(run_seed)}:{question_id}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**31)


def is_secret_name(name: str) -> bool:
    """Whether a setting called ``name`` may hold a secret (``api_key``, ``token``, ``client_secret``, ...).

    ``max_tokens``, ``tokenizer`` and the like are settings, not secrets.
    """
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET.match(name)


def redact_secrets(obj: Any) -> Any:
    """A copy of ``obj`` without secrets: mapping entries whose name :func:`is_secret_name` are dropped
    (recursively), and user and password are removed from URLs (``http://u:p@host`` -> ``http://host``)."""
    if isinstance(obj, dict):
        return {k: redact_secrets(v) for k, v in obj.items() if not is_secret_name(str(k))}
    if isinstance(obj, (list, tuple)):
        return [redact_secrets(v) for v in obj]
    if isinstance(obj, str) and "@" in obj and "://" in obj:
        parts = urlsplit(obj)
        if parts.username or parts.password:
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            return urlunsplit(parts._replace(netloc=netloc))
    return obj


def split_names(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (order kept, duplicates dropped); lists pass through the same way."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(s.strip() for s in items if s and s.strip()))


def parse_estimator_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split an ``--estimators`` item into the registered name and its constructor parameters.

    ``"consistency"`` -> ``("consistency", {})``; ``"consistency:m=5:reuse_samples=true"`` ->
    ``("consistency", {"m": 5, "reuse_samples": True})``. Values are converted like ``--model_args``
    values (int / float / bool / None). The whole item is the estimator's label in the run directory, so
    two parameterisations of one estimator can sit side by side.

    Raises:
        CapcalError: a parameter without ``=`` or an empty name (one line naming the item).
    """
    from .models.factories import convert_value

    name, *parts = spec.split(":")
    if not name.strip():
        raise CapcalError(f"malformed --estimators item {spec!r}: no estimator name")
    params: dict[str, Any] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or not key.strip().isidentifier():
            raise CapcalError(f"malformed --estimators item {spec!r}: {part!r} is not key=value")
        params[key.strip()] = convert_value(value.strip())
    return name.strip(), params


@dataclass
class RunConfig:
    """What one run does. ``None`` means "the default of the suite, else of the task spec, else capcal's".

    Attributes:
        output: the run directory (created if needed; re-using it resumes).
        model: registered backend name (``embedded``, ``hf``, ``openai``, or a plugin's).
        model_args: keyword arguments of the backend factory (``base_url``, ``model``, ``gguf_file``, ...).
        tasks: task names; empty with ``suite`` set means the suite's tasks.
        suite: a suite of ``registry.yaml`` (tasks, k, limits, estimators), or ``None``.
        k: samples per question (>= 1).
        limit: questions per task from the start of the evaluation split (``None`` = suite's / all).
        temperature: softmax temperature (>= 0; ``None`` = the task's generation default).
        top_p, top_k, min_p: truncation settings; ``None`` = the task's default, else untruncated (1, 0, 0).
        max_tokens: maximum new tokens per sample (``None`` = the task's default, else 512).
        logprobs: ask the backend for per-token log-probabilities of every sample (token-logprob baselines).
        seed: run seed; per-sample seeds are :func:`derive_seed` (run seed, question id, sample index).
        data_dir: local dataset mirror (``<owner>__<name>/<config>/<split>.jsonl``); ``None`` = the
            ``CAPCAL_DATA_DIR`` environment variable, else the Hugging Face hub.
        estimators: estimator names to run after grading (empty with ``suite`` set = the suite's).
        concurrency: concurrent requests of backends that take a ``concurrency`` argument.
        designated: index of the sample whose correctness is the response target (0 <= designated < k).
        bootstrap: bootstrap resamples of the metrics' intervals.
        train_limit: questions sampled from the train / validation splits for learned estimators.
        progress: show progress bars (``None`` = only when stderr is a terminal).
        grade_truncated: grade samples that stopped at the token limit like finished ones (default: they
            count as incorrect with reason ``truncated``; DESIGN.md "truncated / empty samples").
        forced_format: ``"off"`` (default), ``"on"`` (every sample's final line, and the verbalized
            confidence, decoded under a grammar: :mod:`capcal.forced_formats`) or ``"both"`` (the samples
            that define mu stay free; a forced copy with the same seeds is drawn and graded beside them, a
            forced verbalized row joins the free one, and both parse rates are reported side by side).
    """

    output: str | Path
    model: str = "embedded"
    model_args: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    suite: str | None = None
    k: int | None = None
    limit: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    max_tokens: int | None = None
    logprobs: bool = True
    seed: int = 0
    data_dir: str | Path | None = None
    estimators: list[str] = field(default_factory=list)
    concurrency: int | None = None
    designated: int = 0
    bootstrap: int = 1000
    train_limit: int = DEFAULT_TRAIN_LIMIT
    progress: bool | None = None
    grade_truncated: bool = False
    forced_format: str = "off"

    def __post_init__(self) -> None:
        self.tasks = split_names(self.tasks)
        self.estimators = split_names(self.estimators)
        self.model_args = dict(self.model_args or {})

    def validate(self) -> None:
        """Check ranges and combinations; raise :class:`CapcalError` naming the first bad setting."""
        def bad(name: str, value: Any, expected: str) -> CapcalError:
            return CapcalError(f"--{name.replace('_', '-')} {value!r}: expected {expected}")

        if not self.tasks and not self.suite:
            raise CapcalError("no tasks: give --tasks a,b or --suite NAME (see `capcal list tasks`)")
        if not str(self.output):
            raise CapcalError("--output: expected a directory")
        for name, lo in (("k", 1), ("limit", 1), ("max_tokens", 1), ("concurrency", 1), ("top_k", 0),
                         ("designated", 0), ("bootstrap", 0), ("train_limit", 1)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lo):
                raise bad(name, value, f"an integer >= {lo}")
        if self.temperature is not None and not 0 <= self.temperature < float("inf"):
            raise bad("temperature", self.temperature, "a number >= 0")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise bad("top_p", self.top_p, "a number in (0, 1]")
        if self.min_p is not None and not 0 <= self.min_p < 1:
            raise bad("min_p", self.min_p, "a number in [0, 1)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise bad("seed", self.seed, "an integer")
        from .forced_formats import check_mode

        self.forced_format = check_mode(self.forced_format)
        if self.k is not None and self.designated >= self.k:
            raise CapcalError(f"--designated {self.designated} must be smaller than --k {self.k}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (paths as strings), secrets NOT yet removed (see :func:`redact_secrets`)."""
        d = asdict(self)
        d["output"] = str(self.output)
        d["data_dir"] = None if self.data_dir is None else str(self.data_dir)
        return d
