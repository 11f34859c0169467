"""Everything capcal reports for one task: metrics, bootstrap intervals, pass@k and budget curves.

:func:`analyze` works on arrays alone (a :class:`capcal.targets.Targets` and one confidence array per
estimator) and reads or writes no files; :func:`capcal.results.analyze_run` reads a run directory and
calls it for every task. The metric names come from :mod:`capcal.metric_catalogue`. The output structure
is the contract with ``capcal.results`` (docs/architecture.md, "Analysis output"; docs/metrics.md): plain
Python floats, NaN written as ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import metrics as M
from . import validate as V
from .bootstrap import PreparedEstimator, TaskArrays, bootstrap_metrics, percentile_ci
from .budget import evaluate_budgets
from .errors import DataError, InvalidArrayError, UnknownNameError
from .jsonio import clean_json
from .metric_catalogue import calibration_metrics, selective_metrics
from .passk import curve_ks, passk_curve, passk_predicted, passk_table
from .selective import selective_curve, selective_scores
from .targets import Targets

DEFAULT_KS = (1, 4, 16, 64)
DEFAULT_BUDGETS = (1, 2, 4, 8, 16, 32, 64)

#: Metric names of :func:`point_metrics`, in the order they are reported (from the catalogue).
METRIC_NAMES = calibration_metrics()
#: The selective-prediction metrics among them (capcal.selective), against both targets.
SELECTIVE_METRICS = selective_metrics()


def point_metrics(p, mu, r, labels, n_bins: int = 10, binning: str = "equal_width",
                  counts: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    """The calibration and selective-prediction metrics of one estimator (the ``METRIC_NAMES``), NaN
    questions excluded.

    Args:
        p: (Q,) confidences; mu: (Q,) capability target; r: (Q,) response target;
        labels: (Q, n_max) per-sample labels with NaN padding.
        n_bins, binning: the binning of ECE, MCE and the decomposition.
        counts: optional ``(c, n)`` per question, the correct and total samples of ``labels``; saves
            recounting the label matrix for ``auroc_samples`` when many estimators share it.

    Raises:
        ValueError: confidences outside [0, 1] (NaN allowed), mu outside [0, 1], r or labels not 0/1
            (labels may hold NaN padding), or arrays without one entry per question.
    """
    if counts is None:
        auroc_samples = M.auroc_samples(p, labels)
    else:
        auroc_samples = M.auroc_weighted(p, counts[0], counts[1] - counts[0])
    out = {
        "cc_brier": M.brier(p, mu), "rc_brier": M.brier(p, r),
        "cc_ece": M.ece(p, mu, n_bins, binning), "rc_ece": M.ece(p, r, n_bins, binning),
        "cc_mce": M.mce(p, mu, n_bins, binning), "rc_mce": M.mce(p, r, n_bins, binning),
        "cc_logloss": M.log_loss(p, mu), "rc_logloss": M.log_loss(p, r),
        "pearson": M.pearson(p, mu), "spearman": M.spearman(p, mu),
        "auroc": M.auroc(p, r), "auroc_samples": auroc_samples,
    }
    for name, t in (("cc", mu), ("rc", r)):
        for part, v in M.brier_decomposition(p, t, n_bins, binning).items():
            out[f"{name}_{part}"] = v
    for name, t in (("cc", mu), ("rc", r)):
        sel = selective_scores(p, t)
        out[f"{name}_aurc"], out[f"{name}_prr"] = sel["aurc"], sel["prr"]
    return out


def _check_targets(targets: Targets) -> None:
    q = len(targets.ids)
    if q == 0:
        raise DataError("no questions to analyse (the targets are empty)")
    if np.any(targets.n < 1):
        bad = targets.ids[np.flatnonzero(targets.n < 1)[0]]
        raise DataError(f"{int(np.sum(targets.n < 1))} question(s) have no graded samples (first: {bad!r})")
    if np.any(targets.designated < 0) or np.any(targets.designated >= targets.n):
        i = int(np.flatnonzero((targets.designated < 0) | (targets.designated >= targets.n))[0])
        raise DataError(f"question {targets.ids[i]!r}: designated sample {int(targets.designated[i])} "
                        f"is outside its {int(targets.n[i])} samples")
    V.binary(targets.labels, "targets.labels", "analyze", allow_nan=True)
    V.counts(targets.n, targets.c, "analyze", "targets.n", "targets.c")


def _check_confidence(name: str, p, q: int) -> np.ndarray:
    try:
        arr = np.asarray(p, dtype=float)
    except (TypeError, ValueError):
        raise InvalidArrayError(f"analyze: estimator {name!r}: confidences are not numbers") from None
    if arr.shape != (q,):
        raise InvalidArrayError(f"analyze: estimator {name!r}: expected {q} confidences, got shape {arr.shape}")
    bad = (arr < 0) | (arr > 1)
    if bad.any():
        raise InvalidArrayError(f"analyze: argument 'confidences[{name!r}]' (estimator {name!r}) has "
                                f"{int(bad.sum())} of {q} entries outside [0, 1] (NaN marks a failed question)")
    return arr


def analyze(targets: Targets, confidences: Mapping[str, np.ndarray], *, n_boot: int = 1000, seed: int = 0,
            ks=DEFAULT_KS, budgets=DEFAULT_BUDGETS, reference: str | None = None,
            n_bins: int = 10, binning: str = "equal_width", selective_curves: bool = False) -> dict:
    """Analyse one task: every metric of every estimator, with paired-bootstrap intervals and differences.

    Args:
        targets: the task's targets (n, c, designated, per-sample labels); every question needs n >= 1.
        confidences: estimator name -> (Q,) confidences aligned with ``targets.ids`` (NaN = failed).
        n_boot: bootstrap resamples (0: no intervals, every ``ci`` is ``[None, None]``).
        seed: bootstrap seed.
        ks: k for the instance-level pass@k MSE (only ``k <= min n`` are reported).
        budgets: average budgets B for the allocation curve (only ``B <= min n``).
        reference: name of the estimator every other one is compared with in ``differences``; ``None``
            compares every pair (``"A-B"`` for A listed before B). A difference is computed on the questions
            that BOTH estimators answered (where one has NaN, the other is measured on the common questions
            too, with the same bootstrap resamples); :func:`common_counts` gives how many those are.
        n_bins, binning: ECE / reliability binning (``"equal_width"`` or ``"equal_mass"``).
        selective_curves: also give each estimator its ``selective_curve`` (accuracy against coverage for
            both targets and the oracle's, :func:`capcal.selective.selective_curve`), as the results
            document stores it.

    Returns:
        The structure of docs/metrics.md ("Output"): ``n_questions``, ``n_samples``, ``mean_mu``, ``n_boot``,
        ``seed``, ``actual_passk``, ``estimators`` (per estimator: ``n``, ``n_nan``, ``nan_rate``,
        ``metrics`` {name: {value, ci}}, ``reliability``, ``passk_curve``, ``budget_curve``) and
        ``differences``. NaN is ``None``.

    Raises:
        DataError: empty targets, a question without samples, a designated index out of range, or a
            confidence array of the wrong length or outside [0, 1] (:class:`capcal.errors.InvalidArrayError`,
            also a ``ValueError``, naming the estimator and how many entries are bad); labels that are
            not 0/1, or ``c > n``.
        UnknownNameError: ``reference`` is not one of the estimators.
    """
    if binning not in M.BINNINGS:
        raise DataError(f"unknown binning {binning!r}; expected one of {', '.join(M.BINNINGS)}")
    _check_targets(targets)
    q = len(targets.ids)
    conf = {name: _check_confidence(name, p, q) for name, p in confidences.items()}
    if reference is not None and reference not in conf:
        raise UnknownNameError("estimator", reference, conf)
    n = targets.n.astype(np.int64)
    c = targets.c.astype(np.int64)
    mu, r, labels = c / n, targets.r.astype(float), targets.labels
    n_min = int(n.min())
    table = passk_table(n, c)
    ks_inst = [int(k) for k in ks if 1 <= k <= n_min]
    task = TaskArrays(mu=mu, r=r, n=n, c=c)
    oracle_all = evaluate_budgets(mu, n, c, budgets, table)

    result = {
        "n_questions": q,
        "n_samples": {"min": n_min, "max": int(n.max())},
        "mean_mu": float(mu.mean()),
        # mean mu(1 - mu): the exact gap between RC-Brier (averaged over every choice of the designated
        # sample) and CC-Brier, the same for every estimator; also oracle-RC's expected CC-Brier.
        "bernoulli_variance": float((mu * (1.0 - mu)).mean()),
        "n_boot": int(n_boot), "seed": int(seed),
        "actual_passk": [{"k": k, "value": float(table[:, k].mean())} for k in curve_ks(n_min)],
        "estimators": {}, "differences": {},
    }
    prepared: dict[str, PreparedEstimator] = {}
    values: dict[str, dict[str, float]] = {}

    def measure(p: np.ndarray, restrict_of: str | None = None):
        """Point values, bootstrap features and budget result of one confidence vector (NaN = excluded).

        ``restrict_of``: ``p`` is that estimator's confidences on fewer questions; its budget allocation is
        reused (evaluated on the kept questions) and its bootstrap features are derived from the
        estimator's own (:meth:`capcal.bootstrap.PreparedEstimator.restrict`); the budget result is ``None``.
        """
        valid = ~np.isnan(p)
        vals = point_metrics(p, mu, r, labels, n_bins, binning, counts=(c, n))
        err2 = {k: (passk_predicted(p, k) - table[:, k]) ** 2 for k in ks_inst}
        for k in ks_inst:
            vals[f"passk_mse@{k}"] = float(np.mean(err2[k][valid])) if valid.any() else float("nan")
        if restrict_of is not None:
            base = prepared[restrict_of]
            if base.budget_gain is not None and valid.any():
                vals["budget_gain"] = float(np.mean(base.budget_gain[valid]))
            return vals, base.restrict(valid, restrict_of, p, task, err2), None
        if valid.all():
            bud = evaluate_budgets(p, n, c, budgets, table, oracle=oracle_all)
        else:
            bud = evaluate_budgets(p[valid], n[valid], c[valid], budgets, table[valid])
        gain_q = np.zeros(q)
        gain_q[valid] = bud.per_question_gain()
        has_budget = bool(bud.budgets) and valid.any()
        if has_budget:
            vals["budget_gain"] = float(np.mean(gain_q[valid]))
        return vals, PreparedEstimator(p, task, n_bins, binning, err2, gain_q if has_budget else None), bud

    for name, p in conf.items():
        valid = ~np.isnan(p)
        n_nan = int((~valid).sum())
        values[name], prepared[name], bud = measure(p)
        result["estimators"][name] = {
            "n": q, "n_nan": n_nan, "nan_rate": n_nan / q,
            "metrics": {},
            "reliability": {"cc": M.reliability_bins(p, mu, n_bins, binning),
                            "rc": M.reliability_bins(p, r, n_bins, binning)},
            "passk_curve": passk_curve(p, n, c, table=table),
            "budget_curve": bud.curve() if valid.any() else [],
        }
        if selective_curves:
            result["estimators"][name]["selective_curve"] = selective_curve(p, mu, r) if valid.any() else []

    names = list(conf)
    pairs = ([(a, reference) for a in names if a != reference] if reference is not None else
             [(a, b) for i, a in enumerate(names) for b in names[i + 1:]])
    # Paired differences are over the questions BOTH estimators answered: where one has NaN that the other
    # has not, the other is re-measured on the common questions (a variant, bootstrapped with the same
    # resamples), so that a coverage gap never shows up as a quality gap.
    valid_of = {name: ~np.isnan(p) for name, p in conf.items()}
    sides: dict[tuple[str, str], tuple[str, str]] = {}
    variant_key: dict[tuple[str, bytes], str] = {}
    for a, b in pairs:
        common = valid_of[a] & valid_of[b]
        chosen = []
        for x in (a, b):
            if np.array_equal(common, valid_of[x]):
                chosen.append(x)
                continue
            key = (x, np.packbits(common).tobytes())
            if key not in variant_key:
                label = f"\0{x}\0{len(variant_key)}"           # cannot clash with an estimator name
                variant_key[key] = label
                # budget gain: the estimator's own allocation, evaluated on the common questions
                values[label], prepared[label], _ = measure(np.where(common, conf[x], np.nan), restrict_of=x)
            chosen.append(variant_key[key])
        sides[(a, b)] = (chosen[0], chosen[1])

    boot = bootstrap_metrics(prepared, task, n_boot, seed) if n_boot > 0 else {}
    for name in names:
        result["estimators"][name]["metrics"] = {
            m: {"value": v, "ci": list(percentile_ci(boot[name][m])) if boot else [np.nan, np.nan]}
            for m, v in values[name].items()}
    for a, b in pairs:
        va, vb = sides[(a, b)]
        diff = {}
        for m in values[va]:
            if m not in values[vb]:
                continue
            ci = (list(percentile_ci(boot[va][m] - boot[vb][m])) if boot else [np.nan, np.nan])
            diff[m] = {"value": values[va][m] - values[vb][m], "ci": ci}
        result["differences"][f"{a}-{b}"] = diff
    return clean_json(result)


def common_counts(confidences: Mapping[str, np.ndarray], pairs: list[tuple[str, str]]) -> dict[str, int]:
    """Per pair ``(A, B)``, the number of questions both answered (``"A-B"`` -> count), over which
    :func:`analyze` computes their paired difference.

    Raises:
        ValueError: confidences outside [0, 1] (NaN allowed), or arrays of different lengths.
    """
    valid = {k: ~np.isnan(V.confidences(v, f"confidences[{k!r}]", "common_counts")) for k, v in confidences.items()}
    out = {}
    for a, b in pairs:
        V.same_length("common_counts", **{a: valid[a], b: valid[b]})
        out[f"{a}-{b}"] = int(np.count_nonzero(valid[a] & valid[b]))
    return out
