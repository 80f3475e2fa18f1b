#!/usr/bin/env bash
# From the committed GPU runs, rebuild the selection table shipped in the package
# (convbench/data/selection.json, what backend="auto" uses when no other table is given) and the
# report of the current kernels per device (results/h100/current/, results/h200/current/).
# Measures nothing.
#
# The table keys its picks by device name, so the H100 and the H200 runs do not mix: each device
# gets the picks measured on it (another GPU of compute capability 9.0 takes the H100's).
# Within a device, run folders are read in order and a row measured twice (same implementation,
# case, device name and precision policy) keeps the later folder's row, so each folder below
# supersedes what came before it for the implementations it re-measured.
# H100:
#   gpu_full                  every implementation, every SHAPES.md shape; its pointwise fp32 rows
#                             stay (fp32 pointwise was not re-run under the default policy)
#   session3/depthwise_kernels  every depthwise implementation on every shape, both layouts
#   session3/depthwise_ncl_triton, session4/depthwise_long_kernel(_training)  focused re-runs
#   session5/pointwise_kernels  TMA pointwise kernels against every torch path, bf16/fp16
#   session5/pw_tf32, pw_ieee  fp32 pointwise under each stated policy (picks for a caller that
#                             sets that policy; the gpu_full rows serve the default one)
#   session6/.../training     fwd and fwd_bwd on the final depthwise kernels
#   session6/depthwise_*_triton_final  the final depthwise kernels on every shape, last word
# H200 (sessions 9-18, the current kernels):
#   session9/.../training     fwd and fwd_bwd, dtts_dec_b19 fp32 and FastConformer-L bf16
#   session10/depthwise_kernels  every depthwise implementation on every shape, both layouts (fwd)
#   session13/call4_final/depthwise_long_seq  long_seq, every implementation, both layouts (fwd):
#                             the (N, C, L) row-class plans
#   session14/call7_final_longseq/depthwise_long_seq  long_seq again, the final class kernels
#   session12/final/pointwise_kernels  every pointwise implementation, bf16/fp16 (nlc_gluon, ncl_tg,
#                             tuned on device time)
#   session14/.../pointwise_ncl_odd_l  odd-L (N, C, L) rows with ncl_ts offered
#   session15/call10_pointwise/pointwise_kernels  every pointwise implementation, bf16/fp16, with
#                             the 8-stage Gluon configs: supersedes session 12's rows
#   session16/call8_pointwise/pointwise_kernels  the same with the cooperative Gluon configs:
#                             supersedes session 15's rows
#   session16/call9_pwodd/pointwise_ncl_odd_l  odd-L (N, C, L) rows, the same tuning set
#   session12/final/pw_tf32, pw_ieee  fp32 pointwise under each stated policy
#   session18/call13_ncl_triton/ncl  the (N, C, L) Triton depthwise forward alone after the packed
#                             16-bit conversion change (every shape but long_seq and long_kernel):
#                             supersedes session 10's triton (N, C, L) rows
#   session19/call6_longseq/depthwise_long_seq  long_seq, every implementation, both layouts (fwd),
#                             16-bit row classes in 16-element groups: supersedes session 14's
#   session20/call1_floor, call4_graph, call5_final  the depthwise status page's timer section only
#                             (our kernels on the large rows under four timers); not in the selection table
# Also the H200's per-issue status pages, results/h200/current/depthwise_status.md (issue 7:
# scripts/depthwise_status.py over the depthwise runs above, later runs replacing earlier rows)
# and pointwise_status.md (issue 8: scripts/pointwise_status.py on the newest bf16/fp16 run).
# Usage: bash scripts/current_tables.sh
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
  "$H/session5/pw_tf32"
  "$H/session5/pw_ieee"
  "$H/session6/call3_63fb177/training"
  "$H/session6/depthwise_nlc_triton_final"
  "$H/session6/depthwise_ncl_triton_final"
)
G=results/h200
H200_RUNS=(
  "$G/session9/call7_c175ee2/training"
  "$G/session10/depthwise_kernels"
  "$G/session13/call4_final/depthwise_long_seq"
  "$G/session14/call7_final_longseq/depthwise_long_seq"
  "$G/session12/final/pointwise_kernels"
  "$G/session14/call8_pwplans_pwodd/pointwise_ncl_odd_l"
  "$G/session15/call10_pointwise/pointwise_kernels"
  "$G/session16/call8_pointwise/pointwise_kernels"
  "$G/session16/call9_pwodd/pointwise_ncl_odd_l"
  "$G/session12/final/pw_tf32"
  "$G/session12/final/pw_ieee"
  "$G/session18/call13_ncl_triton/ncl"
  "$G/session19/call6_longseq/depthwise_long_seq"
)
python3 -m convbench select "${RUNS[@]}" "${H200_RUNS[@]}" -o convbench/data/selection.json
mkdir -p $H/current $G/current
for fmt in html md; do
  python3 -m convbench report "${RUNS[@]}" -o $H/current/report.$fmt
  python3 -m convbench report "${H200_RUNS[@]}" -o $G/current/report.$fmt
done
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
DW_NEWER=(session13/call4_final/depthwise_long_seq session14/call7_final_longseq/depthwise_long_seq
          session18/call13_ncl_triton/ncl session19/call6_longseq/depthwise_long_seq)
{
  echo "# Depthwise status, H200 (issue 7)"
  echo
  echo "Made by \`bash scripts/current_tables.sh\` (\`scripts/depthwise_status.py\`) from the committed runs:"
  echo "\`$G/session10/depthwise_kernels\` (every implementation, every shape), with the rows of"
  printf '%s\n' "${DW_NEWER[@]/#/- \`$G/}" | sed 's/$/`/'
  echo "replacing its rows of the same implementation, case and mode (marked †; the later runs re-measured"
  echo "changed kernels only). Forward+backward: \`$G/session9/call7_c175ee2/training\`. The floor is bytes"
  echo "over the copy bandwidth measured by the run the shape's first row came from; \"% copy\" is against a"
  echo "same-size copy timed in the same run as the row. Medians of convbench's cold-L2 timing."
  echo
  python3 scripts/depthwise_status.py "$G/session10/depthwise_kernels" "$G/session9/call7_c175ee2/training" \
    "${DW_NEWER[@]/#/--newer=$G/}"
  echo
  echo "## What the timer costs our kernels: flush and events"
  echo
  echo "\`configs/depthwise_floor_rows.yaml\` (the rows above moving >= 50 MB, long_kernel aside), our two kernels"
  echo "under four timers (session 20, \`$G/session20/\`; each run's floor is its own measured copy bandwidth):"
  echo "- \`measure.l2: cold\`, CUDA events: the dirty flush and event timing of every table above (as triton's"
  echo "  do_bench and nvbench); \`call1_floor/floor_cold\`;"
  echo "- \`clean\`, CUDA events: a flush that writes, then reads, so no foreign dirty lines are written back"
  echo "  inside the timing (nor the case's own output still in the L2 at its end: this one flatters);"
  echo "  \`call5_final/floor_clean\`;"
  echo "- \`--graph\`, cold and clean: CUDA-graph replays of (flush, call) pairs less the flushes alone (the"
  echo "  Triton tuners' timer: no event or launch gaps; each call pays for its output's write-back);"
  echo "  \`call4_graph/floor_graph_cold\`, \`call5_final/floor_graph_clean\`. Graphs with the clean flush time a"
  echo "  kernel's own traffic and nothing else."
  echo
  echo "### CUDA events, cold / clean"
  echo
  python3 scripts/depthwise_status.py --flush "$G/session20/call1_floor/floor_cold" "$G/session20/call5_final/floor_clean"
  echo
  echo "### CUDA-graph replays less the flushes, cold / clean"
  echo
  python3 scripts/depthwise_status.py --flush "$G/session20/call4_graph/floor_graph_cold" "$G/session20/call5_final/floor_graph_clean"
} > $G/current/depthwise_status.md
python3 scripts/pointwise_status.py "$G/session16/call8_pointwise/pointwise_kernels" -o $G/current/pointwise_status.md
