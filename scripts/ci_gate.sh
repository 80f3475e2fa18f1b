#!/usr/bin/env bash
# The CI performance gate: run configs/ci_gate.yaml into a fresh folder, compare it with a
# committed baseline run, exit with compare's code (0 pass, 1 regression, 2 bad input).
#
#   scripts/ci_gate.sh [BASELINE_DIR] [compare options...]
#   scripts/ci_gate.sh results/ci_gate_baseline --threshold 5% --normalize-to torch
#
# Environment: CONVBENCH_GATE_CONFIG (default configs/ci_gate.yaml), CONVBENCH_GATE_OUT (the new
# run's folder, default runs/ci_gate-<timestamp>), PYTHON (default python). The Markdown table
# goes to $GITHUB_STEP_SUMMARY when set, and beside the run as compare.md / compare.json.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

BASELINE="results/ci_gate_baseline"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then BASELINE="$1"; shift; fi
CONFIG="${CONVBENCH_GATE_CONFIG:-configs/ci_gate.yaml}"
OUT="${CONVBENCH_GATE_OUT:-runs/ci_gate-$(date -u +%Y%m%d-%H%M%S)}"
PY="${PYTHON:-python}"

if [ ! -f "$BASELINE/results.jsonl" ]; then
    echo "ci_gate: error: baseline '$BASELINE' is not a convbench run folder (no results.jsonl);" \
         "record one with: $PY -m convbench run $CONFIG --out $BASELINE (see docs/ci_gate.md)" >&2
    exit 2
fi
if [ -e "$OUT" ]; then
    echo "ci_gate: error: '$OUT' already exists; the gate needs a fresh run folder" >&2
    exit 2
fi

echo "ci_gate: running $CONFIG into $OUT" >&2
"$PY" -m convbench run "$CONFIG" --out "$OUT" --quiet
rc=$?
if [ $rc -ne 0 ]; then
    echo "ci_gate: error: the benchmark run failed (exit $rc); no comparison was made" >&2
    exit 2
fi

"$PY" -m convbench compare "$BASELINE" "$OUT" --format json -o "$OUT/compare.json" "$@" >/dev/null 2>&1
"$PY" -m convbench compare "$BASELINE" "$OUT" --format md -o "$OUT/compare.md" "$@"
rc=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$OUT/compare.md" ]; then
    cat "$OUT/compare.md" >> "$GITHUB_STEP_SUMMARY"
fi
exit $rc
