"""The physical floor of classifying one face: the model's multiply-accumulates over the machine's peak.

    python -m benchmarks.floor [MODEL]

``count_macs`` walks the ONNX graph (shapes from onnx.shape_inference at batch 1) and counts the
multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul nodes. ``peak_gflops`` measures
single-core FP32 throughput with an sgemm (numpy, and onnxruntime's MatMul) in a subprocess
limited to one thread. The
floor is ``2 * MACs / peak``: no implementation on that core can classify a face faster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def count_macs(onnx_path: str | os.PathLike) -> dict[str, Any]:
    """Multiply-accumulates of one face (batch 1) through the model, by operator type."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(onnx_path))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = 1  # batch (or any free dimension) = 1
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    for name, init in initializers.items():
        shapes[name] = list(init.dims)

    by_op: dict[str, int] = {}
    unknown: list[str] = []
    for node in inferred.graph.node:
        op = node.op_type
        if op not in ("Conv", "ConvTranspose", "Gemm", "MatMul", "FusedMatMul"):
            continue
        try:
            macs = _node_macs(node, shapes, initializers, numpy_helper, np)
        except (KeyError, IndexError, ValueError):
            unknown.append(node.name or op)
            continue
        if macs < 0:
            unknown.append(node.name or op)
            continue
        by_op[op] = by_op.get(op, 0) + macs
    params = int(sum(np.prod(init.dims) for init in graph.initializer))
    return {"macs": int(sum(by_op.values())), "macs_by_op": by_op, "params": params,
            "nodes_not_counted": unknown, "model": str(onnx_path)}


def _node_macs(node: Any, shapes: dict[str, list[int]], initializers: dict, numpy_helper: Any, np: Any) -> int:
    attrs = {a.name: a for a in node.attribute}
    if node.op_type in ("Conv", "ConvTranspose"):
        weight = shapes[node.input[1]]  # Conv: (M, C/group, kH, kW); ConvTranspose: (C, M/group, kH, kW)
        if node.op_type == "Conv":
            out = shapes[node.output[0]]  # (N, M, H', W')
            if min(out) < 0:
                return -1
            return int(np.prod(out)) * int(np.prod(weight[1:]))
        inp = shapes[node.input[0]]  # (N, C, H, W): every input pixel meets the kernel once
        if min(inp) < 0:
            return -1
        return int(np.prod(inp)) * int(np.prod(weight[1:]))
    a, b = shapes[node.input[0]], shapes[node.input[1]]
    if min(a + b) < 0:
        return -1
    if node.op_type == "Gemm":
        trans_a = attrs["transA"].i if "transA" in attrs else 0
        trans_b = attrs["transB"].i if "transB" in attrs else 0
        m, k = (a[1], a[0]) if trans_a else (a[0], a[1])
        n = b[0] if trans_b else b[1]
        return m * k * n
    out = shapes[node.output[0]]  # MatMul: batch dims x (M, K) @ (K, N)
    if min(out) < 0:
        return -1
    k = a[-1]
    return int(np.prod(out)) * k


_PEAK_SCRIPT = r"""
import json, sys, time
import numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
c = a @ b
times = {"numpy": [], "onnxruntime": []}
for _ in range(repeats):
    t = time.perf_counter(); np.matmul(a, b, out=c); times["numpy"].append(time.perf_counter() - t)
try:  # the same sgemm through onnxruntime's own kernels (MLAS), on one intra-op thread
    import onnxruntime as ort
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    session.run(None, {"a": a, "b": b})
    for _ in range(repeats):
        t = time.perf_counter(); session.run(None, {"a": a, "b": b}); times["onnxruntime"].append(time.perf_counter() - t)
except ImportError:
    pass
info = []
try:
    from threadpoolctl import threadpool_info
    info = [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")} for p in threadpool_info()]
except ImportError:
    pass
print(json.dumps({"n": n, "times": times, "blas": info}))
"""


def peak_gflops(sizes: tuple[int, ...] = (512, 1024), repeats: int = 10, timeout: float = 300.0) -> dict[str, Any]:
    """Single-core FP32 GFLOP/s of n x n sgemms by numpy and by onnxruntime (best and median).

    The peak is the best of all: onnxruntime's MLAS kernels can beat the BLAS that numpy ships,
    a 512 matrix can beat a 1024 one, and a floor below what the model already achieves would
    mean nothing. A busy machine makes the peak look lower (and the floor higher) than it is.
    """
    env = {**os.environ, **{var: "1" for var in THREAD_VARS}}
    by_engine: dict[str, dict[str, float]] = {}
    blas: list = []
    for n in sizes:
        done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(n), str(repeats)], env=env,
                              capture_output=True, text=True, timeout=timeout, check=True)
        data = json.loads(done.stdout.strip().splitlines()[-1])
        blas = data["blas"] or blas
        flops = 2.0 * n ** 3
        for engine, times in data["times"].items():
            if times:
                times = sorted(times)
                by_engine[f"{engine} n={n}"] = {"gflops_best": round(flops / times[0] / 1e9, 2),
                                                "gflops_median": round(flops / times[len(times) // 2] / 1e9, 2)}
    best = max(by_engine, key=lambda e: by_engine[e]["gflops_best"])
    return {
        "method": f"float32 n x n matmul (n = {', '.join(map(str, sizes))}) by numpy and by onnxruntime on 1 thread "
                  f"({', '.join(THREAD_VARS[:3])}=1; intra_op_num_threads=1), best of {repeats} runs each; "
                  f"the fastest was {best}",
        "engine": best,
        "gflops_best": by_engine[best]["gflops_best"],
        "gflops_median": by_engine[best]["gflops_median"],
        "by_engine": by_engine,
        "blas": blas,
    }


def floor(macs: int, peak: dict[str, Any], measured: dict[str, float]) -> dict[str, Any]:
    """The floor per face (2 * MACs at the best measured peak) against measured per-face times."""
    floor_ms = 2.0 * macs / (peak["gflops_best"] * 1e9) * 1000.0
    return {
        "floor_ms_per_face": round(floor_ms, 5),
        "measured_ms_per_face": {k: round(v, 4) for k, v in measured.items()},
        "times_floor": {k: round(v / floor_ms, 1) for k, v in measured.items() if floor_ms > 0},
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        onnx_path = Path(args[0])
        onnx_path = onnx_path / "model.onnx" if onnx_path.is_dir() else onnx_path
    else:
        from emofer import hub

        onnx_path = hub.resolve_model(None if hub.DEFAULT_MODEL in hub.bundled_models() else "emofer/fer5")[1]
    macs = count_macs(onnx_path)
    peak = peak_gflops()
    print(json.dumps({**macs, "peak": peak, **floor(macs["macs"], peak, {})}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
