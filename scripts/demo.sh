#!/usr/bin/env bash
# The main job, end to end on a fresh clone: set up .venv, then run the embedded SmolLM2-135M-Instruct
# (no server, no download) over triviaqa and gsm8k with k = 4 samples per question, grade them into
# capability / response targets, run four confidence estimators and write the results into runs/demo.
#
#   bash scripts/demo.sh                 # then: cat runs/demo/tasks/*/targets.jsonl, runs/demo/results.json
#   LIMIT=20 K=8 bash scripts/demo.sh    # more questions / samples
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
OUT=${OUT:-runs/demo}
time .venv/bin/capcal run \
  --tasks triviaqa,gsm8k \
  --limit "${LIMIT:-8}" \
  --k "${K:-4}" \
  ${MAX_TOKENS:+--max-tokens "$MAX_TOKENS"} \
  --estimators verbalized,logprob_mean,oracle_cc,oracle_rc \
  --seed 0 \
  --output "$OUT" \
  "$@"
echo
echo "run directory: $OUT (format: docs/run-directory.md)"
# The leaderboard of this run: Markdown here, and all four formats (md, csv, json, html with plots)
# in $OUT/leaderboard/.
.venv/bin/capcal leaderboard "$OUT" --output-dir "$OUT/leaderboard" >/dev/null
.venv/bin/capcal leaderboard "$OUT" --metrics cc_brier,rc_brier,auroc,passk_mse@4
echo "leaderboard files: $OUT/leaderboard/leaderboard.{md,csv,json,html}"
