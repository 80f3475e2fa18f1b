#!/usr/bin/env bash
# One device-machine call: run the named evidence steps, tar the run folders into $OUT.
# Usage (on the GPU machine, from the repo root): bash scripts/gpu_evidence.sh STEP...
# Steps: correctness sweep2 full timer attribution fault power gate_baseline gate
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
R=$OUT/runs; mkdir -p "$R"
cb() { python3 -m convbench "$@"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$R/nvidia-smi.txt"
for step in "$@"; do
  echo "=== $step $(date +%T)"
  case $step in
    correctness) python3 scripts/gpu_correctness.py --out "$R" ;;
    sweep2) cb run configs/sweep.yaml --out "$R/sweep_a" --quiet && cb run configs/sweep.yaml --out "$R/sweep_b" --quiet \
              && python3 scripts/repeatability.py "$R/sweep_a" "$R/sweep_b" "$R/sweep_a/REPEATABILITY.md" ;;
    full) cb run configs/gpu_full.yaml --out "$R/gpu_full" ;;
    timer) python3 scripts/timer_check.py && mv "$OUT/timer_check.md" "$R/" ;;
    attribution) python3 scripts/gpu_attribution.py && mv "$OUT"/attribution.md "$R/" 2>/dev/null ;;
    fault) python3 scripts/gpu_fault.py; mv "$OUT"/fault* "$R/" 2>/dev/null ;;
    power) python3 scripts/gate_power.py; mv "$OUT"/gate_power* "$R/" 2>/dev/null ;;
    gate_baseline) cb run configs/ci_gate.yaml --out "$R/ci_gate_baseline" --quiet ;;
    gate) bash scripts/ci_gate.sh results/ci_gate_baseline 2>&1 | tee "$R/ci_gate_log.txt" ;;
    *) echo "unknown step $step" ;;
  esac
  echo "=== $step done rc=$? $(date +%T)"
done
tar -czf "$OUT/evidence.tgz" -C "$R" .
ls -la "$OUT"
