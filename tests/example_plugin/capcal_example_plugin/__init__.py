"""An example third-party capcal plugin: the ``gsm8k_terse`` task and the ``question_length`` estimator."""

from .estimator import QuestionLengthEstimator

__all__ = ["QuestionLengthEstimator"]
