"""ggml's own C code as a benchmark peer, through ctypes on the shared libraries that
llama-cpp-python installs (``llama_cpp/lib/libggml-base.so`` and ``libggml-cpu.so``).

Only the calls the benchmarks need, declared from ggml.h / ggml-cpu.h of ggml 0.25.x:

* the quantizer ``ggml_quantize_chunk(type, src, dst, start, nrows, n_per_row, imatrix)``;
* a matmul the way llama.cpp runs one on the CPU: a context holding the weight tensor
  (ne0 = K, ne1 = N, in a GGUF block type) and an F32 activation tensor (ne0 = K, ne1 = M),
  ``ggml_mul_mat``, a graph, ``ggml_graph_plan`` once per thread count and
  ``ggml_graph_compute``. That is what ``ggml_graph_compute_with_ctx`` does, except that it
  takes a fresh work buffer from the context on every call; here the plan's buffer is kept
  so a timed call does only the compute (activation quantization included, as in ggml).

llama-cpp-python is not a dependency of llmkit, nor installed in CI: it has no binary wheel
and its sdist compiles llama.cpp. ``load()`` returns ``(None, why)`` when it is absent.
``GGML_LIB_DIR=<folder>`` points it at those two libraries of a ggml built some other way instead.
"""

import ctypes
import importlib.util
import os

import numpy as np

# ggml's type ids (enum ggml_type; the same numbers as the GGUF file format's).
TYPE_IDS = {"f32": 0, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q2_K": 10, "q3_K": 11,
            "q4_K": 12, "q5_K": 13, "q6_K": 14, "iq4_nl": 20, "iq4_xs": 23, "tq1_0": 34, "tq2_0": 35, "mxfp4": 39}


class _InitParams(ctypes.Structure):  # struct ggml_init_params
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


class _Cplan(ctypes.Structure):  # struct ggml_cplan (ggml-cpu.h)
    _fields_ = [("work_size", ctypes.c_size_t), ("work_data", ctypes.c_void_p), ("n_threads", ctypes.c_int),
                ("threadpool", ctypes.c_void_p), ("abort_callback", ctypes.c_void_p),
                ("abort_callback_data", ctypes.c_void_p), ("use_ref", ctypes.c_bool)]


def _declare(lib, name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


class Ggml:
    """The loaded libraries and the declared functions (ctypes releases the GIL during each call)."""

    def __init__(self, lib_dir):
        self.lib_dir = lib_dir
        # Load order matters only for symbol resolution; RTLD_GLOBAL lets libggml-cpu find libggml-base's.
        self.base = ctypes.CDLL(os.path.join(lib_dir, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
        self.cpu = ctypes.CDLL(os.path.join(lib_dir, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
        vp, i64, sz = ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t
        b, c = self.base, self.cpu
        self.quantize_chunk = _declare(b, "ggml_quantize_chunk", sz, ctypes.c_int, vp, vp, i64, i64, i64, vp)
        self.requires_imatrix = _declare(b, "ggml_quantize_requires_imatrix", ctypes.c_bool, ctypes.c_int)
        self.row_size = _declare(b, "ggml_row_size", sz, ctypes.c_int, i64)
        self.tensor_overhead = _declare(b, "ggml_tensor_overhead", sz)
        self.graph_overhead = _declare(b, "ggml_graph_overhead", sz)
        self.init = _declare(b, "ggml_init", vp, _InitParams)
        self.free = _declare(b, "ggml_free", None, vp)
        self.new_tensor_2d = _declare(b, "ggml_new_tensor_2d", vp, vp, ctypes.c_int, i64, i64)
        self.mul_mat = _declare(b, "ggml_mul_mat", vp, vp, vp, vp)
        self.new_graph = _declare(b, "ggml_new_graph", vp, vp)
        self.build_forward_expand = _declare(b, "ggml_build_forward_expand", None, vp, vp)
        self.get_data = _declare(b, "ggml_get_data", vp, vp)
        self.nbytes = _declare(b, "ggml_nbytes", sz, vp)
        self.graph_plan = _declare(c, "ggml_graph_plan", _Cplan, vp, ctypes.c_int, vp)
        self.graph_compute = _declare(c, "ggml_graph_compute", ctypes.c_int, vp, ctypes.POINTER(_Cplan))
        self.version = _llama_cpp_version() if "GGML_LIB_DIR" not in os.environ else "- (GGML_LIB_DIR)"

    def quantize(self, t, src, start_row=0, nrows=None, dst=None, imatrix=None):
        """ggml's quantizer on rows [start_row, start_row + nrows) of a float32 [rows, n] array into dst (a
        uint8 array of the whole matrix's bytes; made if None), with importance weights (n float32) or none."""
        src = np.ascontiguousarray(src, dtype=np.float32)
        rows, n = src.shape
        nrows = rows - start_row if nrows is None else nrows
        row_bytes = self.row_size(TYPE_IDS[t], n)
        if dst is None:
            dst = np.empty(rows * row_bytes, np.uint8)
        # ggml_quantize_chunk writes at dst + start_row * row_bytes and reads src + start_row * n.
        imx = None
        if imatrix is not None:
            imatrix = np.ascontiguousarray(imatrix, dtype=np.float32).reshape(-1)
            if imatrix.size != n:
                raise ValueError(f"imatrix has {imatrix.size} weights for rows of {n}")
            imx = imatrix.ctypes.data
        got = self.quantize_chunk(TYPE_IDS[t], src.ctypes.data, dst.ctypes.data, start_row * n, nrows, n, imx)
        if got != nrows * row_bytes:
            raise RuntimeError(f"ggml_quantize_chunk({t}) wrote {got} bytes, expected {nrows * row_bytes}")
        return dst


class Matmul:
    """y [M, N] = x [M, K] . W^T in one ggml context: W in ggml type `t` from `wbytes` (the GGUF
    bytes, N rows of K elements back to back, as llmkit stores them), x float32."""

    def __init__(self, g, t, wbytes, n, k, m):
        self.g, self.n, self.k, self.m = g, n, k, m
        tid = TYPE_IDS[t]
        w_nbytes = n * g.row_size(tid, k)
        wbytes = np.ascontiguousarray(wbytes, dtype=np.uint8).reshape(-1)
        if wbytes.size != w_nbytes:
            raise ValueError(f"{t} weights: {wbytes.size} bytes given, ggml needs {w_nbytes}")
        mem = 4 * g.tensor_overhead() + g.graph_overhead() + w_nbytes + 4 * m * (k + n) + (1 << 16)
        self.ctx = g.init(_InitParams(mem, None, False))
        if not self.ctx:
            raise MemoryError("ggml_init failed")
        self.w = g.new_tensor_2d(self.ctx, tid, k, n)
        self.x = g.new_tensor_2d(self.ctx, TYPE_IDS["f32"], k, m)
        self.y = g.mul_mat(self.ctx, self.w, self.x)  # ne0 = N, ne1 = M: row i of y is activation row i
        self.graph = g.new_graph(self.ctx)
        g.build_forward_expand(self.graph, self.y)
        ctypes.memmove(g.get_data(self.w), wbytes.ctypes.data, w_nbytes)
        self.plans = {}

    def set_x(self, x):
        x = np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
        if x.shape != (self.m, self.k):
            raise ValueError(f"x must be {self.m}x{self.k}, got {x.shape}")
        ctypes.memmove(self.g.get_data(self.x), x.ctypes.data, x.nbytes)

    def compute(self, n_threads):
        """One ggml_graph_compute of the mul_mat at n_threads (the plan and work buffer made once)."""
        if n_threads not in self.plans:
            plan = self.g.graph_plan(self.graph, n_threads, None)
            work = np.empty(max(1, plan.work_size), np.uint8)
            plan.work_data = work.ctypes.data
            self.plans[n_threads] = (plan, work)
        status = self.g.graph_compute(self.graph, ctypes.byref(self.plans[n_threads][0]))
        if status != 0:
            raise RuntimeError(f"ggml_graph_compute returned status {status}")

    def result(self):
        """A copy of y as a float32 [M, N] array."""
        buf = (ctypes.c_float * (self.m * self.n)).from_address(self.g.get_data(self.y))
        return np.frombuffer(buf, np.float32).reshape(self.m, self.n).copy()

    def close(self):
        if self.ctx:
            self.g.free(self.ctx)
            self.ctx = None

    def __del__(self):
        self.close()


def _llama_cpp_version():
    try:
        from importlib.metadata import version
        return version("llama_cpp_python")
    except Exception:  # noqa: BLE001 - only for the report line
        return "?"


_LOADED = None


def load():
    """(Ggml, "ok") when llama-cpp-python is importable and ships libggml-base / libggml-cpu
    (or GGML_LIB_DIR names a folder holding them), else (None, the reason)."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    lib_dir = os.environ.get("GGML_LIB_DIR")
    if not lib_dir:
        # Only the package's folder is needed, not its Python code (importing
        # llama_cpp also loads libllama and needs its own dependencies).
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or not spec.submodule_search_locations:
            _LOADED = (None, "llama_cpp not importable (llama-cpp-python is not installed)")
            return _LOADED
        lib_dir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    try:
        _LOADED = (Ggml(lib_dir), "ok")
    except (OSError, AttributeError) as e:
        _LOADED = (None, f"llama_cpp's ggml libraries in {lib_dir} unusable ({type(e).__name__}: {e})")
    return _LOADED
