#!/usr/bin/env bash
# One device-machine call: run the named evidence steps (each under its own time limit), keep
# every step's log, and re-pack the run folders into $OUT/evidence.tgz after each step, so a
# call cut short still returns what finished.
# Usage (GPU machine, repo root): bash scripts/gpu_evidence.sh STEP[:SECONDS]...
# Steps: warmtrain train1 (configs/training.yaml alone) correctness flatcheck (every flat (N, C, L) candidate) clscheck (every row-class one) flatprobe (scripts/flat_probe.py, PROBE_ARGS) sweep2 warmpw pwbench pwlaunch transpose (scripts/transpose_probe.py) gluon nclts nclts_memcheck (probes) pwplans (every pointwise variant forced) pointwise (issue 8) pwdtts (its DTTS 1024->512 rows, 3 runs) pwodd (its (N, C, L) odd-L rows) sweep training precision full timer attribution fault power gate_baseline gate
#        flush (scripts/flush_check.py: copies after a dirty, a clean and no L2 flush)
#        floor (configs/depthwise_floor_rows.yaml under --l2 cold, then --l2 clean) floorgraph (the same with --graph)
#        warm (compile Triton tuning candidates in parallel) warmfwd (forward candidates of WARM_SHAPES) warmncl ncl (configs/depthwise_ncl_triton.yaml) median (configs/depthwise_median.yaml) dtts (configs/depthwise_dtts.yaml) longseq (configs/depthwise_long_seq.yaml) tunetime (its triton rows on a fresh Triton cache, compile threads 1 then 8) warmnlc nlc (configs/depthwise_nlc_triton.yaml) longk (configs/depthwise_long_kernel.yaml) longktrain (its fwd+bwd) dw1 dw2 (configs/depthwise_kernels.yaml
#        in two shards) devbench (scripts/bench_depthwise_gen.py) tunefwd (its forward tuning landscape)
#        ncupw (Nsight Compute: Triton pointwise vs F.linear, PW_SHAPE=N,C_in,C_out,L; PW_CONFIGS: forced nlc_tma configs too)
#        ncu (Nsight Compute sections of tuned forward kernels; NCU_CASES=label:dtype:layout,...,
#        NCU_ARGS=--all-plans for every candidate, NCU_METRICS="--metrics a,b")
set -uo pipefail
set -m  # job control: each step runs in its own process group, so a timeout kills all of it
# a kill of this script (e.g. `timeout`) takes the running step and its watchdog with it: in
# their own process groups they would outlive it, on the GPU, for up to the step's limit
cleanup() {
  [ -n "${pid:-}" ] && kill -KILL -- -"$pid" 2>/dev/null
  [ -n "${killer:-}" ] && kill -KILL -- -"$killer" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'cleanup; exit 143' INT TERM
# wait for every background job given and fail if any failed (a step's exit status is then its
# processes', not that of the grep that shows their summaries)
wait_all() { local p f=0; for p in "$@"; do wait "$p" || f=1; done; return $f; }
# gpu_correctness.py in 8 processes (Triton compiles dominate; 16 cores): LOG TABLE [ARGS...];
# logs $R/LOG.partI.log, joins its $R/TABLE.partIof8.txt files into $R/TABLE.txt, shows the
# summaries and FAIL lines, and fails if any process failed
correctness8() {
  local log=$1 table=$2 i ps=() rc; shift 2
  for i in 1 2 3 4 5 6 7 8; do python3 scripts/gpu_correctness.py "$@" --out "$R" --part $i/8 > "$R/$log.part$i.log" 2>&1 & ps+=($!); done
  wait_all "${ps[@]}"; rc=$?
  cat "$R"/$table.part*of8.txt > "$R/$table.txt"; rm -f "$R"/$table.part*of8.txt
  grep -h "checks," "$R"/$log.part*.log; grep -h "^FAIL" "$R"/$log.part*.log; return $rc
}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
R=$OUT/runs; mkdir -p "$R"
cb() { python3 -m convbench "$@"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv > "$R/nvidia-smi.txt"
for arg in "$@"; do
  step=${arg%%:*}; limit=${arg#*:}; [ "$limit" = "$arg" ] && limit=300
  echo "=== $step (limit ${limit}s) $(date +%T)"
  start=$SECONDS
  (
    case $step in
      correctness) CONVBENCH_TUNE=0 correctness8 correctness gpu_correctness ;;  # the GPU matrix, first tile each
      flatcheck) correctness8 flatcheck gpu_ncl_plans --ncl-plans flat ;;  # every flat (N, C, L) candidate, fwd and grad_x
      clscheck) correctness8 clscheck gpu_ncl_plans --ncl-plans cls ;;  # every row-class (N, C, L) candidate, fwd and grad_x
      flatprobe) OUT=$R python3 scripts/flat_probe.py ${PROBE_ARGS:-} > "$R/flat_probe.txt"; rc=$?; cat "$R/flat_probe.txt"; exit $rc ;;
      transpose) OUT=$R python3 scripts/transpose_probe.py ;;
      gluon) OUT=$R python3 scripts/gluon_probe.py ${GLUON_ARGS:-} ;;  # GLUON_ARGS: e.g. --shapes X --configs "BM,BN,BK,S[,COOP];..."
      nclts) OUT=$R python3 scripts/ncl_ts_probe.py ;;  # PROBE: every ncl_ts config, one process each
      nclts_memcheck)  # compute-sanitizer on the ncl_ts config that faults (NCLTS_CONFIG, default 8: 128x128x64 w4 s4 ws)
        CS=/usr/local/cuda/bin/compute-sanitizer; [ -x "$CS" ] || CS=$(command -v compute-sanitizer) || { echo "no compute-sanitizer"; exit 1; }
        "$CS" --tool memcheck --print-limit 20 python3 scripts/ncl_ts_probe.py --one ${NCLTS_CONFIG:-8} --check-only > "$R/nclts_memcheck.txt" 2>&1; rc=$?
        head -80 "$R/nclts_memcheck.txt"; exit $rc ;;
      pwplans) correctness8 pwplans gpu_pw_plans --pw-plans ;;  # every pointwise variant forced (the script sets CONVBENCH_TUNE=0)
      sweep2) cb run configs/sweep.yaml --out "$R/sweep_a" --quiet && cb run configs/sweep.yaml --out "$R/sweep_b" --quiet \
                && python3 scripts/repeatability.py "$R/sweep_a" "$R/sweep_b" "$R/sweep_a/REPEATABILITY.md" ;;
      sweep) cb run configs/sweep.yaml --out "$R/sweep" ;;
      warmtrain)  # compile the fwd_bwd candidates of configs/training.yaml's cases, one process each
        for i in 1 2 3 4 5 6 7 8; do python3 scripts/warm_triton_cache.py --part $i/8 --shapes dtts_dec_b19,nemo_fastconformer_L \
          --dtypes float32,bfloat16 --modes fwd_bwd > "$R/warm.train$i.log" 2>&1 & done
        wait; grep -c warmed "$R"/warm.*.log ;;
      train1) cb run configs/training.yaml --out "$R/training" --quiet ;;
      training) cb run configs/training.yaml --out "$R/training" --quiet && cb run configs/launch_overhead.yaml --out "$R/launch_overhead" --quiet ;;
      precision) cb run configs/pointwise_precision.yaml --precision ieee --out "$R/pw_ieee" --quiet && cb run configs/pointwise_precision.yaml --precision tf32 --out "$R/pw_tf32" --quiet ;;
      full) cb run configs/gpu_full.yaml --out "$R/gpu_full" --quiet ;;
      warm)  # compile the Triton tuning candidates in 8 processes into Triton's disk cache
        for i in 1 2 3 4 5 6 7 8; do python3 scripts/warm_triton_cache.py --part $i/8 > "$R/warm.part$i.log" 2>&1 & done
        python3 scripts/warm_triton_cache.py --shapes dtts_dec_b19,nemo_fastconformer_L --dtypes float32,bfloat16 --modes fwd_bwd > "$R/warm.train.log" 2>&1 &
        wait; grep -c warmed "$R"/warm.*.log ;;
      warmncl)  # compile the (N, C, L) candidates of configs/depthwise_ncl_triton.yaml and training
        for i in 1 2 3 4 5 6 7; do python3 scripts/warm_triton_cache.py --layouts ncl --part $i/7 \
          --shapes dtts_dec_b19,dtts_dec_b5,dtts_enc,dtts_varpred,nemo_conformer_L,nemo_fastconformer_L,nemo_fastconformer_S,nemo_fastconformer_XXL,torchaudio_doc,long_seq > "$R/warm.part$i.log" 2>&1 & done
        python3 scripts/warm_triton_cache.py --shapes dtts_dec_b19,nemo_fastconformer_L --dtypes float32,bfloat16 --modes fwd_bwd > "$R/warm.train.log" 2>&1 &
        wait; grep -c warmed "$R"/warm.*.log ;;
      warmnlc)  # compile the (N, L, C) candidates of configs/depthwise_nlc_triton.yaml and training
        for i in 1 2 3 4 5 6 7; do python3 scripts/warm_triton_cache.py --layouts nlc --part $i/7 \
          --shapes dtts_dec_b19,dtts_dec_b5,dtts_enc,dtts_varpred,nemo_conformer_L,nemo_fastconformer_L,nemo_fastconformer_S,nemo_fastconformer_XXL,torchaudio_doc,long_seq > "$R/warm.part$i.log" 2>&1 & done
        for i in 1 2 3 4; do python3 scripts/warm_triton_cache.py --part $i/4 --shapes dtts_dec_b19,nemo_fastconformer_L \
          --dtypes float32,bfloat16 --modes fwd_bwd > "$R/warm.train$i.log" 2>&1 & done
        wait; grep -c warmed "$R"/warm.*.log ;;
      nlc) cb run configs/depthwise_nlc_triton.yaml --out "$R/depthwise_nlc_triton" --quiet ;;
      warmpw)  # compile the pointwise tuning candidates (16-bit and tf32) in 8 processes
        for i in 1 2 3 4 5 6 7 8; do python3 scripts/warm_triton_cache.py --op pointwise --part $i/8 \
          --dtypes ${WARM_DTYPES:-bfloat16,float16,float32} > "$R/warmpw.part$i.log" 2>&1 & done
        wait; grep -c warmed "$R"/warmpw.*.log ;;
      pwbench) OUT=$R python3 scripts/bench_pointwise_kernels.py --precisions ${PW_PRECISIONS:-bf16,fp16,fp32-tf32,fp32-ieee} ${PW_ARGS:-} ;;
      pwlaunch) OUT=$R python3 scripts/launch_cost_pointwise.py ${PW_LAUNCH_ARGS:-} ;;  # PW_LAUNCH_ARGS="--cases dtts_pw_1024_512 --profile"
      pointwise) cb run configs/pointwise_kernels.yaml --out "$R/pointwise_kernels" --quiet ;;
      pwdtts) for i in 1 2 3; do cb run configs/pointwise_dtts_1024_512.yaml --out "$R/pointwise_dtts_$i" --quiet || exit 1; done ;;  # issue 8's DTTS 1024->512 row, three runs, each tuned afresh
      pwodd) cb run configs/pointwise_ncl_odd_l.yaml --out "$R/pointwise_ncl_odd_l" --quiet ;;  # (N, C, L) odd-L rows (issue 8)
      longk) cb run configs/depthwise_long_kernel.yaml --out "$R/depthwise_long_kernel" --quiet ;;
      longktrain) cb run configs/depthwise_long_kernel_training.yaml --out "$R/depthwise_long_kernel_training" --quiet ;;
      median) cb run configs/depthwise_median.yaml --out "$R/depthwise_median" --quiet ;;
      dtts) cb run configs/depthwise_dtts.yaml --out "$R/depthwise_dtts" --quiet ;;
      floor) cb run configs/depthwise_floor_rows.yaml --out "$R/floor_cold" --quiet \
               && cb run configs/depthwise_floor_rows.yaml --l2 clean --out "$R/floor_clean" --quiet ;;
      floorgraph) cb run configs/depthwise_floor_rows.yaml --graph --out "$R/floor_graph_cold" --quiet \
               && cb run configs/depthwise_floor_rows.yaml --graph --l2 clean --out "$R/floor_graph_clean" --quiet ;;
      longseq) cb run configs/depthwise_long_seq.yaml --out "$R/depthwise_long_seq" --quiet ;;
      tunetime)  # triton on long_seq (N, C, L), 3 dtypes, each run on a fresh Triton cache: compiles one at a
        # time (CONVBENCH_COMPILE_THREADS=1), then in threads; wall times, and the plans each run picked
        for t in 1 8; do d=$(mktemp -d); s=$SECONDS
          TRITON_CACHE_DIR=$d CONVBENCH_COMPILE_THREADS=$t cb run configs/depthwise_long_seq.yaml --impl triton \
            --out "$R/tunetime_t$t" --quiet || exit 1
          echo "threads=$t: $((SECONDS - s)) s" | tee -a "$R/tunetime.txt"
          python3 -c "import json,sys; [print(r['dtype'], r['layout'], r.get('plan')) for r in map(json.loads, open(sys.argv[1]))]" \
            "$R/tunetime_t$t/results.jsonl" | tee -a "$R/tunetime.txt"; done ;;
      ncl) cb run configs/depthwise_ncl_triton.yaml --out "$R/depthwise_ncl_triton" --quiet ;;
      dw1|dw2) cb run configs/depthwise_kernels.yaml --shard "${step#dw}/2" --out "$R/depthwise_kernels_${step#dw}" --quiet ;;
      devbench) OUT=$R python3 scripts/bench_depthwise_gen.py --budget-s $((limit - 60)) \
                  --cases dtts_dec_b19:float32,nemo_fastconformer_L:bfloat16,nemo_conformer_L:float32,nemo_fastconformer_XXL:bfloat16,long_seq:bfloat16,nemo_conformer_L:float16,dtts_dec_b19:bfloat16 ;;
      warmfwd)  # compile the forward candidates of WARM_SHAPES (default: the tunefwd cases) in 8 processes
        for i in 1 2 3 4 5 6 7 8; do python3 scripts/warm_triton_cache.py --layouts ${WARM_LAYOUTS:-ncl,nlc} --part $i/8 \
          --shapes ${WARM_SHAPES:-dtts_dec_b19,nemo_fastconformer_L,nemo_conformer_L,nemo_fastconformer_XXL,long_seq} > "$R/warm.part$i.log" 2>&1 & done
        wait; grep -c warmed "$R"/warm.*.log ;;
      tunefwd) OUT=$R python3 scripts/bench_depthwise_gen.py --fwd-only --budget-s $((limit - 30)) --layouts ${TUNE_LAYOUTS:-ncl,nlc} \
                  --cases ${TUNE_CASES:-dtts_dec_b19:float32,nemo_fastconformer_L:bfloat16,nemo_conformer_L:float32,nemo_fastconformer_XXL:bfloat16,long_seq:bfloat16,nemo_conformer_L:float16,dtts_dec_b19:bfloat16,nemo_fastconformer_L:float32} ;;
      ncu)  # Nsight Compute: tuned (N, C, L) vs (N, L, C) forward on the same shapes
        cases=${NCU_CASES:-dtts_dec_b19:float32:ncl,dtts_dec_b19:float32:nlc,nemo_fastconformer_L:bfloat16:ncl,nemo_fastconformer_L:bfloat16:nlc}
        /usr/local/cuda/bin/ncu --nvtx --nvtx-include "prof/" --section SpeedOfLight --section MemoryWorkloadAnalysis \
          --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section Occupancy --section LaunchStats \
          --section SourceCounters --section InstructionStats --print-details all ${NCU_METRICS:-} --csv --page details python3 scripts/ncu_depthwise.py --cases "$cases" ${NCU_ARGS:-} > "$R/ncu_details.csv"
        rc=$?; grep -v '^"' "$R/ncu_details.csv" | head -20; exit $rc ;;
      ncupw)  # Nsight Compute: tuned Triton (N, L, C) pointwise vs F.linear on PW_SHAPE (DTTS 1024->512); PW_CONFIGS="[nlc_tma:|nlc_gluon:]LABEL;..." forced configs too
        /usr/local/cuda/bin/ncu --nvtx --nvtx-include "prof/" --section SpeedOfLight --section MemoryWorkloadAnalysis \
          --section WarpStateStats --section Occupancy --section LaunchStats --section InstructionStats \
          --section SchedulerStats --print-details all --csv --page details \
          python3 scripts/ncu_pointwise.py --shape ${PW_SHAPE:-19,1024,512,517} ${PW_CONFIGS:+--configs "$PW_CONFIGS"} > "$R/ncu_pw_details.csv"
        rc=$?; grep -v '^"' "$R/ncu_pw_details.csv" | head -20; exit $rc ;;
      flush) OUT=$R python3 scripts/flush_check.py ;;
      timer) OUT=$R python3 scripts/timer_check.py ;;
      attribution) OUT=$R python3 scripts/gpu_attribution.py ;;
      fault) OUT=$R/fault python3 scripts/gpu_fault.py ;;
      power) OUT=$R python3 scripts/gate_power.py --config configs/gate_power.yaml ;;
      gate_baseline) cb run configs/ci_gate.yaml --out "$R/ci_gate_baseline" --quiet ;;
      gate) bash scripts/ci_gate.sh results/ci_gate_baseline ;;
      selftest)  # the watchdog's own test: a background child that ignores TERM, then a chain
        bash -c "trap '' TERM; sleep ${SELFTEST_S:-30}" & sleep "${SELFTEST_S:-30}"; sleep "${SELFTEST_S:-30}"; wait ;;
      *) echo "unknown step $step" ;;
    esac
  ) > "$R/$step.log" 2>&1 &
  pid=$!
  # the watchdog kills its own sleep when the step ends first: an orphaned sleep kept the device
  # call running for the rest of the step's limit (session 8 lost ~700 s of device time to it)
  # (the whole process group: a step of commands chained with ';' would carry on past a kill of
  # the step's direct children alone)
  ( sleep "$limit" && { kill -TERM -- -$pid; sleep 5; kill -KILL -- -$pid; } ) >/dev/null 2>&1 &
  killer=$!
  wait $pid 2>/dev/null; rc=$?  # (stderr: job control reports a killed step with its whole source)
  # whatever of the step is left (a process that ignored TERM, a background job), and the
  # watchdog (its KILL escalation would be cancelled here with it)
  kill -KILL -- -$pid 2>/dev/null; kill -KILL -- -$killer 2>/dev/null; wait $killer 2>/dev/null
  echo "=== $step rc=$rc in $((SECONDS - start))s"
  tail -n 25 "$R/$step.log"
  tar -czf "$OUT/evidence.tgz" -C "$R" .
done
ls -la "$OUT"
