"""Array inputs: dtypes, strides, lists, the DLPack protocol (generic, torch, a ctypes-built capsule)."""

import ctypes
import gc
import sys

import numpy as np
import pytest

import llmkit

RNG = np.random.default_rng(3)
X = (RNG.standard_normal((6, 40)) * 3).astype(np.float32)


def identity(x):
    """An empty chain's apply(): the logits as llmkit read them, as float32."""
    return llmkit.SamplerChain().apply(x)


def greedy(x):
    return llmkit.sample(x, temperature=0.0)


def test_float16_numpy():
    x16 = X.astype(np.float16)
    x16[2, 5] = -np.inf
    np.testing.assert_array_equal(identity(x16), x16.astype(np.float32))  # exact widening
    np.testing.assert_array_equal(greedy(x16), np.argmax(x16.astype(np.float32), axis=1))


@pytest.mark.parametrize("view", [
    lambda a: a[:, ::2],        # column stride 2
    lambda a: a[::2, 1::3],     # both strided, with an offset
    lambda a: a.T.copy().T,     # Fortran order
    lambda a: a[::-1, ::-1],    # negative strides
    lambda a: np.broadcast_to(a[0], (5, a.shape[1])),  # zero row stride
    lambda a: a[3],             # 1-D
])
def test_non_contiguous_views(view):
    v = view(X)
    np.testing.assert_array_equal(identity(v), np.ascontiguousarray(v))
    want = np.argmax(v, axis=-1)
    got = greedy(v)
    if v.ndim == 1:
        assert isinstance(got, int) and got == int(want)
    else:
        np.testing.assert_array_equal(got, want)


def test_byte_swapped_and_unaligned_arrays():
    swapped = X.astype(">f4")
    np.testing.assert_array_equal(identity(swapped), X)
    # strides that are not a multiple of the item size: a structured array's field
    rec = np.zeros(X.shape[1], dtype=[("a", np.int8), ("x", np.float32)])
    rec["x"] = X[0]
    np.testing.assert_array_equal(identity(rec["x"]), X[0])


def test_python_lists():
    assert llmkit.sample([0.5, 3.0, 1.0], temperature=0) == 1
    np.testing.assert_array_equal(llmkit.sample([[0.5, 3.0, 1.0], [4.0, 0.0, 0.0]], temperature=0), [1, 0])
    np.testing.assert_array_equal(identity([[1, 2, 3]]), np.array([[1, 2, 3]], np.float32))


def test_output_types():
    t = llmkit.sample(X, seed=1)
    assert isinstance(t, np.ndarray) and t.dtype == np.int32 and t.shape == (6,) and t.flags.c_contiguous
    assert isinstance(llmkit.sample(X[0], seed=1), int)
    out = identity(X)
    assert out.dtype == np.float32 and out.shape == X.shape
    assert not np.shares_memory(out, X)


def test_input_is_not_modified_and_readonly_is_fine():
    x = X.copy()
    x.setflags(write=False)
    llmkit.SamplerChain().top_k(3).temperature(0.5).apply(x)
    llmkit.SamplerChain(1).top_k(3).dist().sample(x)
    np.testing.assert_array_equal(x, X)


# ---------------------------------------------------------------------------
# DLPack without torch: an object whose only interface is __dlpack__.
class DLPackOnly:
    def __init__(self, array):
        self._a = array
        self.calls = 0

    def __dlpack__(self, stream=None):
        self.calls += 1
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_generic_dlpack_object():
    base = np.ascontiguousarray(X[:, ::2])  # numpy's __dlpack__ needs a readable layout
    obj = DLPackOnly(base)
    np.testing.assert_array_equal(identity(obj), base)
    np.testing.assert_array_equal(greedy(obj), np.argmax(base, axis=1))
    assert obj.calls == 2


def test_dlpack_capsule_is_released():
    base = X.copy()
    obj = DLPackOnly(base)
    before = sys.getrefcount(base)
    for _ in range(20):
        identity(obj)
    gc.collect()
    # numpy's DLPack deleter drops the reference the capsule held: no leak.
    assert sys.getrefcount(base) == before


def test_dlpack_strided_view():
    view = X[:, 1::3]
    obj = DLPackOnly(view)  # numpy exports strides in elements
    np.testing.assert_array_equal(identity(obj), view)


# A capsule built with ctypes: any device, any dtype, and a deleter we can watch.
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _DELETER)]


_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_NAME = b"dltensor"


class CtypesTensor:
    """Exports `array` (float32, host memory) as DLPack, claiming the given device."""

    def __init__(self, array, device_type=1, device_id=0, code=2, bits=32, byte_offset=0):
        self.array = array
        self.device = (device_type, device_id)
        self.streams = []
        self.shape = (ctypes.c_int64 * array.ndim)(*array.shape)
        self.strides = (ctypes.c_int64 * array.ndim)(*[s // array.itemsize for s in array.strides])
        self.deleted = 0
        self._deleter = _DELETER(self._on_delete)
        self.managed = _DLManagedTensor()
        t = self.managed.dl_tensor
        t.data = array.ctypes.data - byte_offset
        t.device = _DLDevice(device_type, device_id)
        t.ndim = array.ndim
        t.dtype = _DLDataType(code, bits, 1)
        t.shape = self.shape
        t.strides = self.strides
        t.byte_offset = byte_offset
        self.managed.deleter = self._deleter

    def _on_delete(self, ptr):
        assert ptr == ctypes.addressof(self.managed)
        self.deleted += 1

    def __dlpack__(self, stream=None):
        self.streams.append(stream)
        return _capsule_new(ctypes.addressof(self.managed), _NAME, None)

    def __dlpack_device__(self):
        return self.device


def test_ctypes_capsule_on_the_host_and_its_deleter():
    obj = CtypesTensor(X, byte_offset=16)
    np.testing.assert_array_equal(identity(obj), X)
    assert obj.deleted == 1  # consumed: llmkit called the deleter exactly once
    assert obj.streams == [None]  # host data: no stream is asked for
    with pytest.raises(ValueError, match="unsupported dtype"):
        identity(CtypesTensor(X, code=5))  # complex: a type code llmkit does not read
    with pytest.raises(ValueError, match=r"unsupported dtype complex32 \(DLPack code 5"):
        identity(CtypesTensor(X, code=5))  # named as numpy and torch name it
    gc.collect()


def test_tensor_claiming_to_be_on_cuda_without_a_gpu():
    if llmkit.cuda_device_count() > 0:
        pytest.skip("a GPU is present: a fake device pointer would be dereferenced")
    obj = CtypesTensor(X, device_type=2)
    with pytest.raises(llmkit.LlmkitError, match="CUDA") as e:
        llmkit.sample(obj, seed=0)
    assert e.value.status == "LLMKIT_ERROR_NO_DEVICE"
    assert obj.deleted == 1  # released on the error path too
    assert obj.streams == [1]  # llmkit reads on the legacy default stream, DLPack's stream 1
    with pytest.raises(llmkit.LlmkitError, match="CUDA"):
        llmkit.SamplerChain().apply(CtypesTensor(X, device_type=2))


def test_unknown_device_type():
    with pytest.raises(llmkit.LlmkitError, match="device type 7"):
        identity(CtypesTensor(X, device_type=7))


def test_wrong_capsule_is_rejected():
    class Bad:
        def __dlpack__(self, stream=None):
            return object()

    with pytest.raises(ValueError, match="did not return a DLPack 'dltensor' capsule"):
        identity(Bad())


# ---------------------------------------------------------------------------
# PyTorch (optional).
def test_torch_tensors():
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(X.copy())
    np.testing.assert_array_equal(identity(t), X)
    np.testing.assert_array_equal(greedy(t), np.argmax(X, axis=1))
    # non-contiguous views keep their strides
    for v in (t[:, ::2], t.t(), t[1:, 3:17]):
        np.testing.assert_array_equal(identity(v), v.contiguous().numpy())
    # float16 and bfloat16
    for dt in (torch.float16, torch.bfloat16):
        low = t.to(dt)
        np.testing.assert_array_equal(identity(low), low.float().numpy())
        np.testing.assert_array_equal(greedy(low), low.float().argmax(dim=1).numpy())
    # one-call sampling on bf16 follows the same Philox draws as float32 of the same values
    bf = t.to(torch.bfloat16)
    np.testing.assert_array_equal(llmkit.sample(bf, seed=9), llmkit.sample(bf.float().numpy(), seed=9))


def test_torch_negative_bit_is_refused():
    # torch exports a lazily negated tensor through DLPack without its sign;
    # reading it would silently give the results of -x.
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(X.copy())
    neg = t._neg_view()
    assert neg.is_neg()
    with pytest.raises(ValueError, match="negative bit"):
        identity(neg)
    with pytest.raises(ValueError, match="negative bit"):
        llmkit.sample(neg, seed=1)
    z = torch.complex(t, t)
    with pytest.raises(ValueError, match="negative bit"):
        identity(z.conj().imag)  # the common way to meet one
    np.testing.assert_array_equal(identity(neg.resolve_neg()), -X)  # the way out the message names
    q = torch.from_numpy(RNG.standard_normal((1, 3, 2, 16)).astype(np.float32))
    with pytest.raises(ValueError, match="q: the torch tensor has its negative bit set"):
        llmkit.attention(q._neg_view(), q, q)
    # rope's default copy resolves the bit; in place it would write through it
    assert torch.equal(llmkit.rope(q._neg_view(), np.arange(3)), llmkit.rope(-q, np.arange(3)))
    with pytest.raises(ValueError, match="x: the torch tensor has its negative bit set"):
        llmkit.rope(q.clone()._neg_view(), np.arange(3), in_place=True)


def test_torch_speculative_and_int64_drafts():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    p = torch.rand(2, 3, 11, generator=g)
    q = torch.rand(2, 4, 11, generator=g)
    drafts = torch.randint(0, 11, (2, 3), generator=g)  # int64
    a = llmkit.verify_speculative(drafts, p, q, seed=4)
    b = llmkit.verify_speculative(drafts.numpy().astype(np.int32), p.numpy(), q.numpy(), seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_torch_cuda_tensor_gives_host_outputs():
    torch = pytest.importorskip("torch")
    if llmkit.cuda_device_count() == 0 or not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    t = torch.from_numpy(X.copy()).cuda()
    tokens = llmkit.sample(t, temperature=0)
    assert isinstance(tokens, np.ndarray)
    np.testing.assert_array_equal(tokens, np.argmax(X, axis=1))
    np.testing.assert_array_equal(llmkit.SamplerChain(2).top_k(5).dist().sample(t),
                                  llmkit.SamplerChain(2).top_k(5).dist().sample(X))
    np.testing.assert_array_equal(identity(t.to(torch.bfloat16)), t.to(torch.bfloat16).float().cpu().numpy())
