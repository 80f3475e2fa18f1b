set -x
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $OUT/nvidia-smi.txt
O=$OUT
odd=odd_L1,odd_L7_K9,odd_L129,odd_L517_K11,odd_K4,odd_pad0,odd_L300_K31,odd_L1030_K8
( CONVBENCH_TUNE=0 OUT=$O timeout 200 python3 scripts/dw_tma_probe.py --shapes $odd --dtypes bfloat16 --max-plans 8 --no-time --name odd_bf16.md > $O/odd_bf16.log 2>&1 ) &
( CONVBENCH_TUNE=0 OUT=$O timeout 200 python3 scripts/dw_tma_probe.py --shapes $odd --dtypes float32 --max-plans 8 --no-time --name odd_fp32.md > $O/odd_fp32.log 2>&1 ) &
( CONVBENCH_TUNE=0 OUT=$O timeout 200 python3 scripts/dw_tma_probe.py --shapes $odd --dtypes float16 --max-plans 4 --no-time --name odd_fp16.md > $O/odd_fp16.log 2>&1 ) &
wait
tail -3 $O/odd_*.log
grep -h 'FAIL\|failed' $O/odd_*.md | head -20
OUT=$O timeout 330 python3 scripts/dw_tma_probe.py --shapes nemo_fastconformer_L,dtts_dec_b19,nemo_fastconformer_XXL,long_seq --dtypes bfloat16,float32 --max-plans 8 > $O/main.log 2>&1
tail -60 $O/main.log | grep '^|'
