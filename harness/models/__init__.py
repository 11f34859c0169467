"""Model backends behind one small interface (:class:`ModelBackend`)."""

from .base import Completion, GenerationRequest, Messages, ModelBackend, ResultCallback, SamplingParams

__all__ = ["Completion", "GenerationRequest", "Messages", "ModelBackend", "ResultCallback", "SamplingParams"]
