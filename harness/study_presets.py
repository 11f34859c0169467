"""The study's presets (models, tasks as name:questions:k, training-split size), in a module of their own so
that the command line can list them without importing the study's numeric code."""

from __future__ import annotations

from typing import Any

#: ``--preset`` values: the sizes the issue asks for, the sizes run on the 2-core machine, and a tiny one
#: for checking an installation.
PRESETS: dict[str, dict[str, Any]] = {
    "issue": {"models": ["smollm2-135m", "qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"],
              "tasks": "mmlu:300:16,triviaqa:200:16,gsm8k:50:8,math500:50:8", "train_limit": 100},
    "cpu": {"models": ["smollm2-135m", "qwen2.5-coder-1.5b"],
            "tasks": "mmlu:100:8,triviaqa:100:8", "train_limit": 40},
    "tiny": {"models": ["smollm2-135m"], "tasks": "mmlu:4:2", "train_limit": 4},
}
