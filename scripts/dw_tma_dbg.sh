export PYTHONPATH=$PWD
t() { echo "== $*"; ( ARGS=; for kv in "$@"; do export "$kv"; done; timeout 60 python3 scripts/dw_tma_dbg.py $ARGS 2>&1 | grep -v "^\s*$" | grep -i "err\|illegal\|nan" | tail -2 ); }
t CONVBENCH_GDW_DEBUG=rtloop
t CONVBENCH_GDW_DEBUG=rtloop,noinv
t DBG_SHAPE=2,16,128,5,2 ARGS="1 4 128 8"
t DBG_SHAPE=2,16,128,5,2 ARGS="8 4 128 8"
t DBG_SHAPE=2,16,129,1,0 ARGS="8 4 128 8"
t DBG_SHAPE=2,16,129,5,2 ARGS="8 4 64 8"
t DBG_SHAPE=2,16,129,5,2 ARGS="8 4 128 8 float32"
