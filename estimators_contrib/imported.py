"""Confidences made by another tool, read back from the run directory (``capcal import --confidences``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from capcal.errors import CapcalError
from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    pass


def imported_rows_path(ctx: EstimatorContext, source: str) -> Path:
    """``RUN/tasks/<task>/imported/<source>.jsonl`` of the context's task.

    The context's cache folder is ``RUN/tasks/<task>/cache/<split>`` (docs/run-directory.md), so the task
    folder is two levels up.
    """
    return Path(ctx.cache_dir).parent.parent / "imported" / f"{source}.jsonl"


class ImportedConfidence(Estimator):
    """The confidences of an imported file, for any split of the run (NaN where the file has none).

    ``capcal import --confidences FILE --name NAME`` already stores NAME as an estimator output of the
    evaluation split; this estimator exists so that wrappers can use the same confidences on other splits,
    e.g. ``recalibrated:base=imported:base_source=NAME`` fits a calibrator on the imported training split's
    confidences and targets and applies it on the evaluation split.

    Args:
        source: the NAME given to ``capcal import --confidences``.
    """

    name = "imported"

    def __init__(self, source: str | None = None):
        if not source:
            raise CapcalError("imported: give the imported confidences' name, e.g. imported:source=NAME")
        self.source = str(source)

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        import numpy as np

        path = imported_rows_path(ctx, self.source)
        if not path.exists():
            raise CapcalError(f"imported: no imported confidences named {self.source!r} ({path} is missing); "
                              "run capcal import --confidences FILE --name NAME first")
        rows = {}
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    rows[str(row["id"])] = row
        conf = np.full(len(ctx), np.nan)
        reasons: list[str | None] = []
        for i, qid in enumerate(ctx.ids):
            row = rows.get(str(qid))
            if row is None:
                reasons.append("no imported confidence")
            elif row.get("confidence") is None:
                reasons.append(row.get("reason") or "no confidence in the source")
            else:
                conf[i] = float(row["confidence"])
                reasons.append(None)
        return EstimatorOutput(conf, reasons, {"source": self.source, "file": str(path),
                                               "samples_overlap_mu": False})
