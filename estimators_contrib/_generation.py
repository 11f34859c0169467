"""Moved to :mod:`capcal.generation` (public); these names are kept for plugins written against earlier versions."""

from capcal.generation import CompletionCache, completion_key, derived_seeds, generate_many, model_identity

__all__ = ["CompletionCache", "completion_key", "derived_seeds", "generate_many", "model_identity"]
