import sys, re, subprocess, tempfile
sys.path.insert(0, "/tmp/t36/ex")
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
sys.path.insert(0, "/work/main")
from convbench.impls import _dw_codegen as gen
K, R, BC = 9, 16, int(sys.argv[2]) if len(sys.argv) > 2 else 512
dt = sys.argv[1]
kern = gen.load(gen.nlc_forward_source(K, R, False))
sig = {"x_ptr": f"*{dt}", "w_ptr": "*fp32", "b_ptr": "*fp32", "y_ptr": f"*{dt}", "C": "i32", "L_in": "i32",
       "L_out": "i32", "padding": "i32", "HAS_BIAS": "constexpr", "BLOCK_C": "constexpr"}
attrs = {(i,): [["tt.divisibility", 16]] for i in (0, 1, 2, 3, 4)}
k = triton.compile(ASTSource(kern, sig, {"HAS_BIAS": True, "BLOCK_C": BC}, attrs), target=GPUTarget("cuda", 90, 32),
                   options={"num_warps": 4})
ptx = k.asm["ptx"]
d = tempfile.mkdtemp(); open(f"{d}/k.cubin", "wb").write(k.asm["cubin"])
sass = subprocess.run(["/tmp/t36/ex/triton/backends/nvidia/bin/cuobjdump", "-sass", f"{d}/k.cubin"], capture_output=True, text=True).stdout
print(triton.__version__, dt, "BLOCK_C", BC, "cvt in ptx:", {c: ptx.count(c) for c in set(re.findall(r"cvt\.[a-z0-9.]+", ptx))})
ops = re.findall(r"^\s+/\*[0-9a-f]{4,6}\*/\s+(?:@!?P\d\s+)?([A-Z0-9]+)", sass, re.M)
from collections import Counter
c = Counter(ops); print("SASS instructions", len(ops), {k: v for k, v in c.most_common() if k in ("F2F", "F2FP", "PRMT", "IMAD", "FFMA", "HADD2", "SHF", "LOP3", "LDG", "STG", "IMAD.U32")})
print(c.most_common(12))
