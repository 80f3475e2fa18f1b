#!/usr/bin/env bash
# From the committed H100 runs, rebuild the selection table shipped in the package
# (convbench/data/selection.json, what backend="auto" uses when no other table is given) and the
# report of the current kernels (results/h100/current/report.html and report.md). Measures nothing.
#
# Run folders are read in order and a row measured twice (same implementation, case and device
# name) keeps the later folder's row, so each folder below supersedes what came before it for the
# implementations it re-measured:
#   gpu_full                  every implementation, every SHAPES.md shape; its pointwise fp32 rows
#                             stay (fp32 pointwise was not re-run under the default policy)
#   session3/depthwise_kernels  every depthwise implementation on every shape, both layouts
#   session3/depthwise_ncl_triton, session4/depthwise_long_kernel(_training)  focused re-runs
#   session5/pointwise_kernels  TMA pointwise kernels against every torch path, bf16/fp16
#   session6/.../training     fwd and fwd_bwd on the final depthwise kernels
#   session6/depthwise_*_triton_final  the final depthwise kernels on every shape, last word
# Usage: bash scripts/current_h100.sh
set -euo pipefail
cd "$(dirname "$0")/.."
H=results/h100
RUNS=(
  "$H/gpu_full"
  "$H/session3/depthwise_kernels"
  "$H/session3/depthwise_ncl_triton"
  "$H/session4/depthwise_long_kernel"
  "$H/session4/depthwise_long_kernel_training"
  "$H/session5/pointwise_kernels"
  "$H/session6/call3_63fb177/training"
  "$H/session6/depthwise_nlc_triton_final"
  "$H/session6/depthwise_ncl_triton_final"
)
python3 -m convbench select "${RUNS[@]}" -o convbench/data/selection.json
mkdir -p $H/current
python3 -m convbench report "${RUNS[@]}" -o $H/current/report.html
python3 -m convbench report "${RUNS[@]}" -o $H/current/report.md
