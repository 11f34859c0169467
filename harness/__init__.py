"""capcal: measure how well a language model's confidence predicts its capability."""

from .hookspecs import hookimpl
from .registry import Registry, get_registry

__version__ = "0.1.0"
__all__ = ["Registry", "__version__", "get_registry", "hookimpl"]
