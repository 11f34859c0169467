"""The versioned results document of one run (``RUN/results.json``): build, validate, write and load it.

The document is described in ``docs/results-schema.md`` and validated against
``capcal/schema/results.schema.json`` (JSON Schema, draft 2020-12) both when it is written and when it is
read. The leaderboard and every other report are rendered from this file, never from in-memory state.

The metric names the schema accepts are those of :mod:`capcal.metric_catalogue` (``metric_direction``,
``metric_title`` and ``is_known_metric`` are re-exported from there).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RunDirError
from .jsonio import clean_json, write_atomic
from .metric_catalogue import METRICS, is_known_metric, metric_direction, metric_title, schema_property_names
from .runconfig import redact_secrets
from .rundir import RunDir
from .schema_cache import accepted_before, fingerprint, remember_accepted

if TYPE_CHECKING:  # pragma: no cover - annotations only; the functions import them where they run
    import jsonschema
    import numpy as np

__all__ = ["METRIC_DIRECTIONS", "METRIC_TITLES", "SCHEMA_VERSION", "ResultsError", "analyze_run", "build_results", "clean_json",
           "is_known_metric", "load_results", "metric_direction", "metric_title", "results_schema",
           "validate_results", "write_results"]

#: Version of the results document this capcal writes and reads. Bump on any incompatible change.
SCHEMA_VERSION = 1

#: ``{metric: direction}`` of the catalogue's plain metrics (kept for callers of earlier versions).
METRIC_DIRECTIONS: dict[str, int] = {m.name: m.direction for m in METRICS if not m.is_family}
#: ``{metric: column title}`` of the catalogue's plain metrics.
METRIC_TITLES: dict[str, str] = {m.name: m.title for m in METRICS if not m.is_family}


class ResultsError(RunDirError):
    """A results document that cannot be used: missing, corrupt, of another schema version, or invalid."""


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    """The JSON Schema of the results document (``capcal/schema/results.schema.json``).

    The names a ``metrics`` object may hold are set from :mod:`capcal.metric_catalogue` (exactly its
    metrics and family instances), so the file cannot drift from the catalogue.
    """
    path = Path(__file__).resolve().parent / "schema" / "results.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["$defs"]["metrics"]["propertyNames"] = schema_property_names()
    return schema


def _model_record(config: dict[str, Any]) -> dict[str, Any]:
    """``{"backend", "model_id", "args"}`` from a run's config.json, secrets removed.

    Accepts ``model`` as a backend name (with ``model_args`` as a dict or a ``k=v,k=v`` string) or as a
    mapping ``{"backend"|"name", "model_id"|"model", "args"}``.
    """
    model = config.get("model")
    args: Any = config.get("model_args") or {}
    if isinstance(model, dict):
        backend = model.get("backend") or model.get("name")
        args = model.get("args") or model.get("model_args") or args
        model_id = model.get("model_id") or model.get("id")
    else:
        backend, model_id = model, None
    if isinstance(args, str):
        args = dict(p.split("=", 1) if "=" in p else (p, True) for p in args.split(",") if p)
    if not isinstance(args, dict):
        args = {}
    args = redact_secrets(args)
    model_id = (model_id or config.get("model_id") or args.get("model") or args.get("pretrained")
                or args.get("model_id") or args.get("path") or backend)
    return {"backend": str(backend or "unknown"), "model_id": str(model_id or "unknown"), "args": args}


def _sampling_record(config: dict[str, Any]) -> dict[str, Any]:
    keys = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "seed")
    sampling = config.get("sampling")
    if not isinstance(sampling, dict):
        sampling = {k: config[k] for k in keys if k in config}
    return redact_secrets(dict(sampling))


def _suite_record(config: dict[str, Any]) -> dict[str, str] | None:
    suite = config.get("suite")
    if not suite:
        return None
    if isinstance(suite, dict):
        return {"name": str(suite.get("name")), "version": str(suite.get("version"))}
    from .suites import load_suite  # lazy: suites imports this module

    return load_suite(str(suite)).to_record()


def _task_config(config: dict[str, Any], task: str) -> dict[str, Any]:
    tasks = config.get("tasks")
    if isinstance(tasks, dict) and isinstance(tasks.get(task), dict):
        return tasks[task]
    return {}


def _fingerprint(config: dict[str, Any], task: str) -> str | None:
    for key in ("data_fingerprints", "fingerprints"):
        fps = config.get(key)
        if isinstance(fps, dict) and fps.get(task):
            return str(fps[task])
    tc = _task_config(config, task)
    fp = tc.get("fingerprint") or tc.get("data_fingerprint")
    return str(fp) if fp else None


def in_sample_reason(meta: dict[str, Any]) -> str | None:
    """Why an estimator's confidences are in-sample, from its meta; ``None`` when they are not.

    In-sample means fitted on the evaluated questions themselves (``"in_sample": true``, e.g. the constant
    base rate of a task without a training split) or computed from the samples that define mu
    (``"samples_overlap_mu": true``: the oracles, consistency reusing the stored samples). Such rows are
    marked on the leaderboard and never gate ``capcal compare``.
    """
    if not isinstance(meta, dict):
        return None
    if meta.get("in_sample"):
        source = meta.get("source")
        return ("fitted on the evaluated questions (in-sample" + (f", source {source!r}" if source else "") + ")")
    if meta.get("samples_overlap_mu"):
        return "computed from the samples that define mu"
    base = meta.get("base_meta")
    if isinstance(base, dict):
        inner = in_sample_reason(base)
        if inner:
            return f"its base estimator is {inner}"
    return None


def _estimator_extras(rd: RunDir, task: str, name: str, ids: np.ndarray) -> dict[str, Any]:
    """Parse rate, failure reasons, meta and the in-sample flag of one estimator's stored output."""
    import numpy as np

    if not rd.estimator_path(task, name).exists():
        return {"parse_rate": None, "failure_reasons": {}, "meta": {}, "in_sample": None}
    conf, reasons, meta = rd.estimator_output(task, name, ids)
    ok = np.isfinite(conf)
    failures = Counter(str(r or "failed") for r, good in zip(reasons, ok, strict=True) if not good)
    return {"parse_rate": float(ok.mean()) if len(ok) else None,
            "failure_reasons": dict(sorted(failures.items())), "meta": redact_secrets(meta),
            "in_sample": in_sample_reason(meta)}


def _common_counts(rd: RunDir, task: str, ids: np.ndarray, pairs: list[str], names: list[str]) -> dict[str, int]:
    """Per difference ``"A-B"``, how many questions both A and B answered (what the difference is over)."""
    import numpy as np

    valid = {}
    for name in names:
        if rd.estimator_path(task, name).exists():
            valid[name] = np.isfinite(rd.estimator_output(task, name, ids)[0])
    out = {}
    for pair in pairs:
        # names may hold "-" themselves: take the split whose both sides are estimators of the task
        cuts = [i for i, ch in enumerate(pair) if ch == "-" and pair[:i] in valid and pair[i + 1:] in valid]
        if cuts:
            a, b = pair[:cuts[0]], pair[cuts[0] + 1:]
            out[pair] = int(np.sum(valid[a] & valid[b]))
    return out


_ESTIMATOR_KEYS = ("n", "n_nan", "nan_rate", "metrics", "reliability", "passk_curve", "budget_curve",
                   "selective_curve")


def completion_tokens_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"mean", "n_counted", "n_samples"}``: mean generated tokens per sample over the samples whose count
    the run recorded (``targets.jsonl`` ``completion_tokens``); ``mean`` is ``None`` when none was."""
    counts = [t for row in rows for t in (row.get("completion_tokens") or []) if isinstance(t, (int, float))]
    total = sum(len(row.get("correct") or []) for row in rows)
    return {"mean": (sum(counts) / len(counts)) if counts else None, "n_counted": len(counts), "n_samples": total}


def _task_record(rd: RunDir, config: dict[str, Any], task: str, analysis: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    rows = rd.target_rows(task) if rd.targets_path(task).exists() else []
    extracted = [e for row in rows for e in row.get("extracted", [])]
    ids = np.array([str(r["id"]) for r in rows], dtype=object)
    tc = _task_config(config, task)
    estimators = {}
    for name, est in analysis.get("estimators", {}).items():
        entry = {k: est.get(k) for k in _ESTIMATOR_KEYS if k in est}
        entry.update(_estimator_extras(rd, task, name, ids) if rows else
                     {"parse_rate": None, "failure_reasons": {}, "meta": {}, "in_sample": None})
        nan_rate = est.get("nan_rate")
        entry["coverage"] = None if nan_rate is None else 1.0 - float(nan_rate)
        estimators[name] = entry
    n_samples = analysis.get("n_samples") or {}
    differences = analysis.get("differences", {})
    n_total = sum(len(row.get("correct", [])) for row in rows)
    finish = Counter(str(f) for row in rows for f in (row.get("finish_reasons") or []))
    return {
        "truncation_rate": (sum(int(r.get("n_truncated", 0)) for r in rows) / n_total) if n_total else None,
        "empty_rate": (sum(int(r.get("n_empty", 0)) for r in rows) / n_total) if n_total else None,
        "finish_reasons": dict(sorted(finish.items())),
        "differences_n_common": _common_counts(rd, task, ids, list(differences), list(estimators)) if rows else {},
        "split": str(tc.get("split", "eval")),
        "k": tc.get("k", config.get("k", n_samples.get("max"))),
        "data_fingerprint": _fingerprint(config, task),
        "n_questions": analysis.get("n_questions", len(rows)),
        "n_samples": {"min": n_samples.get("min"), "max": n_samples.get("max")},
        "mean_mu": analysis.get("mean_mu"),
        "bernoulli_variance": analysis.get("bernoulli_variance"),
        "answer_parse_rate": (sum(e is not None for e in extracted) / len(extracted)) if extracted else None,
        "completion_tokens": completion_tokens_summary(rows),
        "designated_indices": sorted({int(r.get("designated", 0)) for r in rows}),
        "n_boot": analysis.get("n_boot"),
        "seed": analysis.get("seed"),
        "actual_passk": analysis.get("actual_passk", []),
        "estimators": estimators,
        "differences": analysis.get("differences", {}),
    }


def build_results(run_dir: str | Path | RunDir, analysis_by_task: dict[str, dict[str, Any]],
                  *, created: str | None = None) -> dict[str, Any]:
    """Assemble the results document of a run from its config.json, targets and per-task analyses.

    Args:
        run_dir: the run directory (its config.json, targets and estimator outputs are read).
        analysis_by_task: ``{task: capcal.analysis.analyze(...) output}`` (see docs/architecture.md).
        created: ISO 8601 timestamp to record (default: now, UTC).

    Returns:
        The document as plain JSON values (NaN and infinities as ``None``), validated against the schema.

    Raises:
        ResultsError: when the assembled document does not satisfy the schema (a bug upstream).
        RunDirError: when the run directory has no config.json.
    """
    from . import __version__
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    config = rd.config
    analyses = {t: analysis_by_task[t] for t in sorted(analysis_by_task)}
    ks = sorted({(a.get("n_samples") or {}).get("max") for a in analyses.values()} - {None})
    doc = {
        "schema_version": SCHEMA_VERSION,
        "capcal_version": __version__,
        "created": created or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run_name": rd.path.resolve().name,
        "model": _model_record(config),
        "suite": _suite_record(config),
        "k": config.get("k", ks[-1] if ks else None),
        "sampling": _sampling_record(config),
        "seed": config.get("seed"),
        "tasks": {t: _task_record(rd, config, t, a) for t, a in analyses.items()},
    }
    doc = clean_json(doc)
    validate_results(doc, source=str(rd.results_path))
    return doc


def analyze_run(run_dir: str | Path | RunDir, **kwargs) -> dict[str, dict]:
    """Analyse every task of a run directory (targets and every estimator's output).

    Reads the arrays of each task from the run directory and hands them to the pure
    :func:`capcal.analysis.analyze`.

    Args:
        run_dir: the run directory (see :mod:`capcal.rundir`).
        **kwargs: passed to :func:`capcal.analysis.analyze` (``n_boot``, ``seed``, ``ks``, ``budgets``, ``reference``, ...).

    Returns:
        ``{task: analysis}`` for every task with targets, sorted by task name; when ``config.json`` names the
        run's tasks and estimators, files of other tasks or estimators (left by an earlier configuration
        of a re-used directory) are ignored.

    Raises:
        RunDirError: the directory does not exist or holds no task targets.
    """
    from .analysis import analyze  # numpy/scipy-heavy: loading a results document does not need it
    rd = RunDir(run_dir)
    if not rd.path.is_dir():
        raise RunDirError(f"run directory {rd.path} does not exist")
    tasks = rd.tasks()
    # A re-used run directory may hold files of an earlier configuration: keep what config.json names.
    config = rd.config if rd.config_path.exists() else {}
    if config.get("tasks"):
        tasks = [t for t in tasks if t in config["tasks"]]
    if not tasks:
        raise RunDirError(f"{rd.path}: no task has targets yet (tasks/<task>/targets.jsonl)")
    out = {}
    for task in tasks:
        targets = rd.targets(task)
        names = rd.estimators(task)
        if "estimators" in config:  # imported confidences (capcal import --confidences) are always kept
            names = [n for n in names if n in config["estimators"] or rd.is_imported_estimator(task, n)]
        conf = {name: rd.estimator_output(task, name, targets.ids)[0] for name in names}
        out[task] = analyze(targets, conf, **kwargs)
    return out


def write_results(run_dir: str | Path | RunDir, analysis_by_task: dict[str, dict[str, Any]] | None = None,
                  n_boot: int = 1000, seed: int = 0) -> Path:
    """Compute (if needed) and write ``RUN/results.json`` atomically; return its path.

    Args:
        run_dir: the run directory.
        analysis_by_task: per-task analyses; when ``None`` they are computed by
            :func:`analyze_run` ``(run_dir, n_boot=n_boot, seed=seed, selective_curves=True)``.
        n_boot: bootstrap resamples (only used when computing the analysis here).
        seed: bootstrap seed (same).
    """
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if analysis_by_task is None:
        analysis_by_task = analyze_run(rd, n_boot=n_boot, seed=seed, selective_curves=True)
    doc = build_results(rd, analysis_by_task)
    write_atomic(rd.results_path, json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return rd.results_path


def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(top level)"


def validate_results(doc: Any, source: str = "results document") -> None:
    """Check a results document against the schema.

    Raises:
        ResultsError: one line naming ``source``, the offending JSON path and the problem; a document of
            another ``schema_version`` is reported as such (re-create it with this capcal).
    """
    if not isinstance(doc, dict):
        raise ResultsError(f"{source}: not a capcal results document (expected a JSON object)")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"{source}: results schema_version {version!r} is not supported (this capcal reads version "
            f"{SCHEMA_VERSION}); re-create it with this capcal (capcal.results.write_results on the run directory)")
    schema = results_schema()
    schema_id = "results/Draft202012/" + fingerprint(schema)
    if accepted_before(schema_id, doc):  # an unchanged document: no jsonschema import (capcal.schema_cache)
        return
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if error is not None:
        raise ResultsError(f"{source}: invalid results document at {_where(error)}: {error.message[:200]}")
    remember_accepted(schema_id, doc)


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and validate a results document.

    Args:
        path: a ``results.json`` file or a run directory holding one.

    Raises:
        ResultsError: missing file, corrupt JSON (with line and column), other schema version, or a document
            that the schema rejects.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no results file (run `capcal run` first, or write_results on the run)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read results file ({exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: corrupt results file, not valid JSON "
                           f"(line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    validate_results(doc, source=str(path))
    return doc
