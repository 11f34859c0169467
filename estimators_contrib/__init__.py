"""capcal's built-in confidence estimators, each a plugin registered through the entry points."""
