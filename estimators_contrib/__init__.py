"""capcal's built-in confidence estimators, registered in-process by :mod:`capcal.estimators_contrib.plugin`.

``BUILTIN_ESTIMATORS`` maps each registered name to its class (see ``docs/estimators.md``).
"""

from ._verbalized_parse import parse_confidence
from .consistency import Consistency, ConsistencyEntropy
from .imported import ImportedConfidence
from .logprob import MeanTokenProb, SequenceProb
from .oracle import Constant, OracleCC, OracleRC
from .probe import LinearProbe
from .ptrue import PTrue, ptrue_from_top_logprobs
from .recalibration import Calibrator, Recalibrated
from .verbalized import Verbalized
from .verbalized_fewshot import FewShotVerbalized

BUILTIN_ESTIMATORS = {
    cls.name: cls
    for cls in (Verbalized, PTrue, Consistency, ConsistencyEntropy, MeanTokenProb, SequenceProb, LinearProbe,
                OracleCC, OracleRC, Constant, Recalibrated)
}

#: Registered beside the built-ins (``capcal list estimators`` shows them), kept out of
#: ``BUILTIN_ESTIMATORS`` because they produce nothing without data a run must be given first:
#: ``verbalized_fewshot`` m graded training questions (it fails with the reason on a smaller or missing
#: training split) and ``imported`` confidences imported into the run (``capcal import --confidences``).
DATA_DEPENDENT_ESTIMATORS = {cls.name: cls for cls in (FewShotVerbalized, ImportedConfidence)}

__all__ = ["BUILTIN_ESTIMATORS", "DATA_DEPENDENT_ESTIMATORS", "Calibrator", "Consistency", "ConsistencyEntropy", "Constant", "FewShotVerbalized",
           "ImportedConfidence", "LinearProbe",
           "MeanTokenProb", "OracleCC", "OracleRC", "PTrue", "Recalibrated", "SequenceProb", "Verbalized",
           "parse_confidence", "ptrue_from_top_logprobs"]
