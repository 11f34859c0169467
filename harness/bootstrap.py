"""Paired bootstrap over questions, vectorised over resamples.

A bootstrap resample draws Q questions with replacement; it is represented by its count vector
``w`` (how often each question was drawn), so every metric of the resample is a metric of the original
questions weighted by ``w``. Resamples are produced in chunks as a (b, Q) float matrix ``W`` and then:

* every mean-type metric (Brier, log-loss, pass@k errors, the budget gain) and every binned sum (ECE, MCE,
  reliability, resolution, uncertainty) and the moments of Pearson come from ONE matrix product
  ``W @ F`` with a per-question feature matrix ``F`` (Q, m) of all estimators side by side;
* AURC and PRR against both targets (:mod:`capcal.selective`) sum prefix accuracies over the weighted
  tie groups of the confidence ordering (harmonic numbers), vectorised over the chunk;
* Spearman and the two AUROCs use weighted mid-ranks: with the questions sorted by confidence, the
  mid-rank of a tie group of total weight ``g`` whose predecessors weigh ``C`` is ``C + (g + 1) / 2``,
  the rank every copy of a duplicated question gets in the resampled data. AUROC is then the
  Mann-Whitney statistic ``(sum_pos w R - P (P + 1) / 2) / (P N)`` and Spearman the weighted Pearson
  correlation of the two mid-rank vectors.

Pairing: the same count matrices serve every estimator, so differences between estimators are computed
per resample. Seeding: resample ``j`` draws from ``SeedSequence(seed).spawn(n_boot)[j]``, so a given
(seed, Q, n_boot) gives the same resamples whatever the chunk size. Questions where an estimator is NaN
get weight 0 for that estimator (its metrics are over its valid questions, as for the point values).
Equal-mass bin edges are those of the full data, kept fixed across resamples.

Input checks (:mod:`capcal.validate`): :class:`TaskArrays` needs mu in [0, 1], r exactly 0/1 and counts with
``0 <= c <= n``; :class:`PreparedEstimator` needs confidences in [0, 1] or NaN, one per question; sizes and
resample counts are whole and non-negative. Anything else raises ``ValueError``
(:class:`capcal.errors.InvalidArrayError`) naming the argument and how many entries are bad.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import validate as V
from .metrics import LOGLOSS_EPS, bin_edges, bin_index
from .resampling import resample_counts, rows_matmul
from .selective import prepare as prepare_selective
from .selective import selective_rows

#: Target elements per row block of the rank metrics: 2**17 doubles = 1 MiB, to stay in cache.
RANK_ELEMENTS = 1 << 17



def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values, ignoring NaN resamples; ``(nan, nan)`` if none is finite.

    Raises:
        ValueError: ``values`` are not numbers, or ``level`` is not strictly between 0 and 1.
    """
    if not 0.0 < float(level) < 1.0:
        raise V.InvalidArrayError(f"percentile_ci: argument 'level' must be in (0, 1), got {level!r}")
    v = V._as_float(values, "percentile_ci", "values")
    v = v[np.isfinite(v)]
    if not v.size:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(v, [a, 100.0 - a])
    return float(lo), float(hi)


def _groups(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tie groups of a sorted vector: (starts (G,), group index of every position (Q,))."""
    new = np.empty(sorted_values.size, bool)
    if sorted_values.size:
        new[0] = True
        new[1:] = sorted_values[1:] != sorted_values[:-1]
    starts = np.flatnonzero(new)
    return starts, np.cumsum(new) - 1


def _group_ranks(ws: np.ndarray, starts: np.ndarray, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    """Weighted tie groups of sorted positions: (group weights g (b, G), group mid-ranks (b, G)).

    The mid-rank of a group is ``C + (g + 1) / 2`` where ``C`` is the weight of the groups before it.
    Without ties every position is its own group (``g`` is ``ws`` itself).
    """
    g = np.add.reduceat(ws, starts, axis=1) if ties else ws
    mid = np.cumsum(g, axis=1)
    mid -= 0.5 * g
    mid += 0.5
    return g, mid


@dataclass
class TaskArrays:
    """The targets of one task as the bootstrap needs them (all (Q,)).

    Attributes:
        mu, r, n, c: capability target, response target, samples and correct samples per question.
        mu_order, mu_starts, mu_grp: questions sorted by mu, the starts of its tie groups, and the tie group
            of every question (original order), for the mid-ranks of mu.

    Raises:
        ValueError: mu outside [0, 1], r not 0/1, counts breaking ``0 <= c <= n``, or different lengths.
    """

    mu: np.ndarray
    r: np.ndarray
    n: np.ndarray
    c: np.ndarray
    mu_order: np.ndarray = field(init=False)
    mu_grp: np.ndarray = field(init=False)
    mu_starts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.mu = V.unit_interval(self.mu, "mu", "TaskArrays")
        self.r = V.binary(self.r, "r", "TaskArrays")
        self.n, self.c = V.counts(self.n, self.c, "TaskArrays")
        V.same_length("TaskArrays", mu=self.mu, r=self.r, n=self.n, c=self.c)
        self.mu_order = np.argsort(self.mu, kind="stable")
        self.mu_starts, grp_sorted = _groups(self.mu[self.mu_order])
        self.mu_grp = np.empty_like(grp_sorted)
        self.mu_grp[self.mu_order] = grp_sorted            # mu group of every question (original order)
        self.equal_n = bool(self.n.size) and bool(np.all(self.n == self.n[0]))
        self.rc = np.stack([self.r, self.c], axis=1).astype(float)

    def mu_ranks(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(group weights, group mid-ranks), both (b, G_mu), of mu under the weights ``w`` (b, Q)."""
        return _group_ranks(np.take(w, self.mu_order, axis=1), self.mu_starts, True)


# column layout of the dense part of PreparedEstimator.features
_V, _BCC, _BRC, _LCC, _LRC, _P, _MU, _PP, _MM, _PM, _R, _C, _N = range(13)
_DENSE = 13


class PreparedEstimator:
    """One estimator's per-question features for the weighted metrics.

    Args:
        p: (Q,) confidences (NaN = failed).
        task: the task's :class:`TaskArrays`.
        n_bins, binning: the ECE binning (edges fixed from the full data).
        passk_err2: ``{k: (Q,) squared error of predicted vs actual pass@k}`` (NaN where p is NaN).
        budget_gain: (Q,) per-question budget gain, or ``None``.

    Raises:
        ValueError: confidences outside [0, 1] (NaN allowed), or not one per question of ``task``.
    """

    def __init__(self, p, task: TaskArrays, n_bins: int = 10, binning: str = "equal_width",
                 passk_err2: dict[int, np.ndarray] | None = None, budget_gain: np.ndarray | None = None):
        p = V.confidences(p, "p", "PreparedEstimator")
        V.same_length("PreparedEstimator", p=p, mu=task.mu)
        self.valid = ~np.isnan(p)
        self.any_nan = not self.valid.all()
        #: estimators with the same valid questions share their per-resample rank quantities
        self.mask_key = np.packbits(self.valid).tobytes() if self.any_nan else b""
        #: ``(base name, dropped question indices)`` when this estimator is another one restricted to fewer
        #: questions (see :meth:`restrict`); set by the caller
        self.restricted_from: tuple[str, np.ndarray] | None = None
        v = self.valid.astype(float)
        pz = np.where(self.valid, p, 0.0)
        mu, r = task.mu, task.r
        q = np.clip(pz, LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
        lq, l1q = np.log(q), np.log1p(-q)
        self.n_bins, self.binning = n_bins, binning
        self._bin = bin_index(p, bin_edges(p, n_bins, binning), binning)
        self.ks = sorted(passk_err2 or {})
        cols = [v, v * (pz - mu) ** 2, v * (pz - r) ** 2, -v * (mu * lq + (1 - mu) * l1q),
                -v * (r * lq + (1 - r) * l1q), v * pz, v * mu, v * pz * pz, v * mu * mu, v * pz * mu,
                v * r, v * task.c, v * task.n]
        cols += [np.where(self.valid, passk_err2[k], 0.0) for k in self.ks]
        self.has_budget = budget_gain is not None
        #: (Q,) the per-question budget gain (0 where p is NaN), or ``None``
        self.budget_gain = np.where(self.valid, budget_gain, 0.0) if self.has_budget else None
        if self.has_budget:
            cols.append(self.budget_gain)
        self._cols = cols
        self._bin_values = (v, v * pz, v * mu, v * r)           # per bin: count, sum p, sum mu, sum r
        self.width = len(cols) + 4 * n_bins
        self._features: np.ndarray | None = None
        # rank structure: the valid questions sorted by confidence (NaN ones are left out: weight 0)
        valid_idx = np.flatnonzero(self.valid)
        self.order = valid_idx[np.argsort(p[valid_idx], kind="stable")]
        self.starts, self.grp = _groups(p[self.order])
        self.ties = self.starts.size < self.order.size
        self.rc_s = np.stack([r, task.c], axis=1)[self.order].astype(float)       # (Qv, 2)
        self.n_s = task.n[self.order].astype(float)
        self.mu_grp_s = task.mu_grp[self.order]
        # selective prediction: orderings by confidence and by each target (capcal.selective)
        cc, rc = prepare_selective(p, mu), prepare_selective(p, r)
        self._sel_order = cc[0]
        self._sel_targets = {"cc": cc[1:], "rc": rc[1:]}

    def selective_metrics(self, w: np.ndarray, cache: dict | None = None) -> dict[str, np.ndarray]:
        """AURC and PRR against mu and r of the resamples ``w`` (b, Q): ``{cc_aurc, cc_prr, rc_aurc, rc_prr}``.

        ``cache``: a dict shared by the estimators of one chunk: the oracle's AURC depends only on the valid
        questions, so it is computed once per set of them (:attr:`mask_key`)."""
        out = {}
        shared = None if cache is None else cache.setdefault(self.mask_key, {})
        for name, rows in selective_rows(w, self._sel_order, self._sel_targets, oracle_cache=shared).items():
            out[f"{name}_aurc"], out[f"{name}_prr"] = rows["aurc"], rows["prr"]
        return out

    def restrict(self, keep, base_name: str, p, task: TaskArrays,
                 passk_err2: dict[int, np.ndarray] | None = None) -> PreparedEstimator:
        """This estimator on the questions ``keep`` only (the others treated as NaN), for paired differences
        on common questions.

        With equal-width bins every feature of the restricted estimator is this one's times the mask, so
        :func:`bootstrap_metrics` gets its weighted sums from this estimator's (``base_name``) minus the
        dropped questions' instead of from columns of its own.

        Args:
            keep: (Q,) bool, the questions to keep.
            base_name: this estimator's name in the dict given to :func:`bootstrap_metrics`.
            p: (Q,) the confidences with NaN outside ``keep`` (the caller's, already computed).
            task: the task arrays.
            passk_err2: as for the constructor (NaN outside ``keep``).
        """
        keep = np.asarray(keep, dtype=bool)
        gain = None if self.budget_gain is None else np.where(keep, self.budget_gain, 0.0)
        out = PreparedEstimator(p, task, self.n_bins, self.binning, passk_err2, gain)
        if self.binning == "equal_width":
            out.restricted_from = (base_name, np.flatnonzero(self.valid & ~keep))
        return out

    def fill_features(self, out: np.ndarray) -> None:
        """Write the (Q, width) feature matrix into ``out``: the dense columns, then 4 blocks of bins."""
        d = len(self._cols)
        for j, col in enumerate(self._cols):
            out[:, j] = col
        out[:, d:] = 0.0
        rows = np.arange(out.shape[0])
        for block, val in enumerate(self._bin_values):
            out[rows, d + block * self.n_bins + self._bin] = val
        self._features = out

    @property
    def features(self) -> np.ndarray:
        """(Q, width) per-question features; ``W @ features`` gives every weighted sum the metrics need."""
        if self._features is None:
            self.fill_features(np.empty((self._bin.size, self.width)))
        return self._features

    def metrics(self, s: np.ndarray, w: np.ndarray, task: TaskArrays) -> dict[str, np.ndarray]:
        """Every metric of the resamples ``w`` (b, Q) whose ``w @ features`` is ``s`` (b, width).

        Returns:
            ``{metric name: (b,) values}`` (NaN where undefined in a resample).
        """
        out = self.linear_metrics(s)
        out.update(self._rank_metrics(w, s, task, None))
        out.update(self.selective_metrics(w))
        return out

    def linear_metrics(self, s: np.ndarray) -> dict[str, np.ndarray]:
        """The metrics that are functions of the weighted sums ``s`` (b, width) = ``W @ features``."""
        out: dict[str, np.ndarray] = {}
        nb = self.n_bins
        sw = s[:, _V]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["cc_brier"], out["rc_brier"] = s[:, _BCC] / sw, s[:, _BRC] / sw
            out["cc_logloss"], out["rc_logloss"] = s[:, _LCC] / sw, s[:, _LRC] / sw
            mp, mm = s[:, _P] / sw, s[:, _MU] / sw
            cov = s[:, _PM] / sw - mp * mm
            var_p, var_m = s[:, _PP] / sw - mp * mp, s[:, _MM] / sw - mm * mm
            out["pearson"] = np.where((var_p > 1e-15) & (var_m > 1e-15),
                                      cov / np.sqrt(np.abs(var_p * var_m)), np.nan)
            j = _DENSE
            for k in self.ks:
                out[f"passk_mse@{k}"] = s[:, j] / sw
                j += 1
            if self.has_budget:
                out["budget_gain"] = s[:, j] / sw
                j += 1
            cnt, sp = s[:, j:j + nb], s[:, j + nb:j + 2 * nb]
            full = cnt > 0
            safe = np.where(full, cnt, 1.0)
            for name, st in (("cc", s[:, j + 2 * nb:j + 3 * nb]), ("rc", s[:, j + 3 * nb:j + 4 * nb])):
                gap = np.abs(sp - st)
                out[f"{name}_ece"] = gap.sum(axis=1) / sw
                mce = np.where(full, gap / safe, -np.inf).max(axis=1)
                mce[~full.any(axis=1)] = np.nan
                out[f"{name}_mce"] = mce
                tbar = st.sum(axis=1) / sw
                out[f"{name}_reliability"] = np.sum(np.where(full, gap ** 2 / safe, 0.0), axis=1) / sw
                out[f"{name}_resolution"] = np.sum(
                    np.where(full, cnt * (st / safe - tbar[:, None]) ** 2, 0.0), axis=1) / sw
            out["cc_uncertainty"] = var_m
            rbar = s[:, _R] / sw
            out["rc_uncertainty"] = rbar - rbar * rbar
        return out

    def _rank_metrics(self, w, s, task, shared: RankShared | None):
        """Spearman, AUROC and sample-level AUROC of the resamples ``w`` (b, Q) (unmasked counts)."""
        sw = s[:, _V]
        if shared is None:                                   # NaN questions: ranks among the valid ones
            shared = RankShared(w * self.valid, task)
        wv = shared.w
        ws = np.take(wv, self.order, axis=1)
        rm_s = np.take(shared.midm, self.mu_grp_s, axis=1)   # mid-rank of mu, confidence order
        if self.ties:
            g, midg = _group_ranks(ws, self.starts, True)
            x = ws * np.take(midg, self.grp, axis=1)         # w_i R_i
            sum_rank_rc = rows_matmul(x, self.rc_s)                      # (b, 2): sum w R r, sum w R c
            cross = np.einsum("bq,bq->b", x, rm_s)
            g3 = np.einsum("bg,bg,bg->b", g, g, g)
        else:
            # every question is its own group: R = C - (w - 1) / 2 with C the running weight, so
            # w R = w C - w^2 / 2 + w / 2 and the last two terms are shared by all estimators
            y = ws * np.cumsum(ws, axis=1)
            yrc = rows_matmul(y, self.rc_s)
            sum_rank_rc = yrc - 0.5 * shared.w2_rc + 0.5 * s[:, [_R, _C]]
            cross = np.einsum("bq,bq->b", y, rm_s) - 0.5 * shared.w2_rm + 0.5 * shared.w_rm
            g3 = shared.w3
        with np.errstate(invalid="ignore", divide="ignore"):
            m = (sw + 1.0) * 0.5
            vp = (sw * sw - 1.0) / 12.0 - (g3 - sw) / (12.0 * sw)
            vm = shared.var_m
            spear = (cross / sw - m * m) / np.sqrt(vp * vm)
            spear[~((vp > 1e-9 * m * m) & (vm > 1e-9 * m * m))] = np.nan
            # AUROC vs r: Mann-Whitney with mid-ranks, U = sum_pos w R - P (P + 1) / 2
            pos = s[:, _R]
            neg = sw - pos
            au = (sum_rank_rc[:, 0] - pos * (pos + 1.0) * 0.5) / (pos * neg)
            au[(pos <= 0) | (neg <= 0)] = np.nan
            # AUROC vs every sample: question i stands for n_i tied samples, c_i of them positive
            pos2 = s[:, _C]
            if task.equal_n:
                # all n equal: sample-level mid-ranks are n R - (n - 1) / 2, no second pass needed
                nn = float(task.n[0])
                sum_pos_rank = nn * sum_rank_rc[:, 1] - 0.5 * (nn - 1.0) * pos2
            else:
                wn = ws * self.n_s
                _, mid2 = _group_ranks(wn, self.starts, self.ties)
                r2 = np.take(mid2, self.grp, axis=1) if self.ties else mid2
                sum_pos_rank = rows_matmul(ws * r2, self.rc_s[:, 1])
            neg2 = s[:, _N] - pos2
            au2 = (sum_pos_rank - pos2 * (pos2 + 1.0) * 0.5) / (pos2 * neg2)
            au2[(pos2 <= 0) | (neg2 <= 0)] = np.nan
        return {"spearman": spear, "auroc": au, "auroc_samples": au2}


class RankShared:
    """Per-resample quantities that every estimator without NaN shares (computed once per sub-chunk).

    Args:
        w: (b, Q) counts, already multiplied by an estimator's validity mask when it has NaN.
        task: the task arrays.
    """

    def __init__(self, w: np.ndarray, task: TaskArrays):
        self.w = w
        gm, self.midm = task.mu_ranks(w)
        sw = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.var_m = (sw * sw - 1.0) / 12.0 - (np.einsum("bg,bg,bg->b", gm, gm, gm) - sw) / (12.0 * sw)
        rm = np.take(self.midm, task.mu_grp, axis=1)        # mid-rank of mu, original order
        w2 = w * w
        self.w3 = np.einsum("bq,bq->b", w2, w)
        self.w2_rc = rows_matmul(w2, task.rc)
        self.w2_rm = np.einsum("bq,bq->b", w2, rm)
        self.w_rm = np.einsum("bq,bq->b", w, rm)


def _chunk_metrics(w, feats, bounds, names, estimators, task, derived=None):
    """All metrics of one chunk of resamples: one matrix product, then rank metrics row block by row block.

    ``derived``: ``{name: (base position, dropped question indices)}`` of restricted estimators, whose
    weighted sums are their base's minus the dropped questions' (no columns of their own in ``feats``).
    """
    s_all = rows_matmul(w, feats)
    blocks = {nm: s_all[:, bounds[i]:bounds[i + 1]] for i, nm in enumerate(names)}
    for nm, (pos, dropped) in (derived or {}).items():
        base = feats[:, bounds[pos]:bounds[pos + 1]]
        blocks[nm] = blocks[names[pos]] - (rows_matmul(w[:, dropped], base[dropped]) if dropped.size else 0.0)
    every = list(blocks)
    res = {nm: estimators[nm].linear_metrics(blocks[nm]) for nm in every}
    step = max(1, RANK_ELEMENTS // max(w.shape[1], 1))
    parts: dict[str, list[dict[str, np.ndarray]]] = {nm: [] for nm in every}
    for lo in range(0, w.shape[0], step):
        sub = w[lo:lo + step]
        shared: dict[bytes, RankShared] = {}          # one per distinct set of valid questions
        for nm in every:
            est = estimators[nm]
            if est.mask_key not in shared:
                shared[est.mask_key] = RankShared(sub * est.valid if est.any_nan else sub, task)
            parts[nm].append(est._rank_metrics(sub, blocks[nm][lo:lo + step], task, shared[est.mask_key]))
    oracle_cache: dict = {}
    for nm in every:
        for metric in parts[nm][0]:
            res[nm][metric] = np.concatenate([p[metric] for p in parts[nm]])
        res[nm].update(estimators[nm].selective_metrics(w, oracle_cache))
    return res


def bootstrap_metrics(estimators: dict[str, PreparedEstimator], task: TaskArrays, n_boot: int,
                      seed: int = 0, chunk: int | None = None,
                      workers: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Paired bootstrap of every metric of every estimator.

    Args:
        estimators: name -> :class:`PreparedEstimator` (all built on the same ``task``).
        task: the task arrays.
        n_boot: number of resamples (0 gives empty arrays).
        seed: bootstrap seed (see :func:`resample_counts`).
        chunk: resamples per chunk (default from ``CHUNK_ELEMENTS``).
        workers: threads working on chunks at once (default: the CPU count, at most 4). numpy releases
            the GIL in the heavy operations; BLAS is held to one thread meanwhile so that the two kinds of
            parallelism do not oversubscribe the cores. The result does not depend on it.

    Returns:
        ``{estimator: {metric: (n_boot,) values}}``, resample j being the same draw for every estimator.

    Raises:
        ValueError: ``n_boot`` not whole and >= 0.
    """
    n_boot = int(V.nonnegative_int(n_boot, "n_boot", "bootstrap_metrics"))
    if not estimators:
        return {}
    # an estimator restricted from another one (PreparedEstimator.restricted_from) reuses its base's columns
    names = [nm for nm, est in estimators.items() if est.restricted_from is None
             or est.restricted_from[0] not in estimators]
    pos = {nm: i for i, nm in enumerate(names)}
    derived = {nm: (pos[est.restricted_from[0]], est.restricted_from[1]) for nm, est in estimators.items()
               if nm not in pos}
    bounds = np.cumsum([0] + [estimators[nm].width for nm in names])
    feats = np.empty((task.mu.size, int(bounds[-1])))
    for i, nm in enumerate(names):                 # one matrix; each estimator keeps a view of its block
        estimators[nm].fill_features(feats[:, bounds[i]:bounds[i + 1]])
    workers = max(1, min(os.cpu_count() or 1, 4) if workers is None else workers)
    names_out = list(estimators)

    def work(w):
        return _chunk_metrics(w, feats, bounds, names, estimators, task, derived)

    with threadpool_limits(limits=1, user_api="blas"):
        chunks = resample_counts(task.mu.size, n_boot, seed, chunk)
        if workers == 1:
            results = [work(w) for w in chunks]
        else:
            results, pending = [], deque()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for w in chunks:                       # at most 2 * workers chunk matrices alive at once
                    pending.append(pool.submit(work, w))
                    if len(pending) >= 2 * workers:
                        results.append(pending.popleft().result())
                results.extend(f.result() for f in pending)
    if not results:
        return {nm: {} for nm in names_out}
    return {nm: {m: np.concatenate([res[nm][m] for res in results]) for m in results[0][nm]} for nm in names_out}
