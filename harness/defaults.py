"""Defaults that several stages share, defined once (no imports: every layer may read them)."""

#: Samples per question when neither the command line, the suite nor the task spec sets k.
DEFAULT_K = 8
#: Maximum new tokens per sample when neither the command line nor the task spec sets it.
DEFAULT_MAX_TOKENS = 512
