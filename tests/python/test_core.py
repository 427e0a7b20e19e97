"""Versions, build info, threads, devices, Philox, exceptions, stubs and docstrings."""

import ast
import inspect
import re
import sys

import numpy as np
import pytest

import llmkit
from llmkit import _llmkit
import reference as ref


def test_version_matches_the_c_library_and_cmake(repo_root):
    assert llmkit.__version__ == llmkit.version() == _llmkit.version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", llmkit.__version__)
    major, minor, patch = map(int, llmkit.__version__.split("."))
    assert _llmkit.version_number() == major * 10000 + minor * 100 + patch
    cmake = repo_root / "CMakeLists.txt"
    if cmake.is_file():
        m = re.search(r"project\(llmkit\s+VERSION\s+([0-9.]+)", cmake.read_text())
        assert m and m.group(1) == llmkit.__version__


def test_installed_metadata_version_matches():
    from importlib import metadata

    try:
        dist_version = metadata.version("llmkit")
    except metadata.PackageNotFoundError:
        pytest.skip("llmkit is used from the build tree, not installed")
    assert dist_version == llmkit.__version__


def test_build_info_format():
    info = llmkit.build_info()
    m = re.fullmatch(r"cuda=(on|off) onednn=(on|off) sanitizers=(on|off)", info)
    assert m, info
    assert (m.group(1) == "on") == llmkit.cuda_compiled()


def test_cuda_device_count():
    n = llmkit.cuda_device_count()
    assert isinstance(n, int) and n >= 0
    if not llmkit.cuda_compiled():
        assert n == 0


def test_num_threads_roundtrip():
    old = llmkit.get_num_threads()
    try:
        llmkit.set_num_threads(3)
        assert llmkit.get_num_threads() == 3
        llmkit.set_num_threads(0)  # back to the default: all hardware threads
        assert llmkit.get_num_threads() >= 1
    finally:
        llmkit.set_num_threads(old)


def test_set_num_threads_negative_is_value_error():
    with pytest.raises(ValueError, match="n_threads must be >= 0") as e:
        llmkit.set_num_threads(-1)
    assert e.value.status == "LLMKIT_ERROR_INVALID_ARGUMENT"


# Known-answer vectors from the Random123 distribution (kat_vectors, philox4x32 10).
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", PHILOX_KAT)
def test_philox_known_answers(counter, key, expected):
    assert llmkit.philox4x32_10(counter, key) == expected
    assert ref.philox4x32_10(counter, key) == expected  # the test's own implementation agrees


def test_philox_matches_reference_on_random_inputs(rng):
    for _ in range(200):
        c = [int(x) for x in rng.integers(0, 2**32, 4)]
        k = [int(x) for x in rng.integers(0, 2**32, 2)]
        assert llmkit.philox4x32_10(c, k) == ref.philox4x32_10(c, k)


def test_philox_argument_checks():
    with pytest.raises(ValueError, match="counter must have 4 words"):
        llmkit.philox4x32_10([1, 2, 3], [0, 0])
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        llmkit.philox4x32_10([0, 0, 0, 2**32], [0, 0])


def test_llmkit_error_class():
    assert issubclass(llmkit.LlmkitError, RuntimeError)
    assert llmkit.LlmkitError.__module__ == "llmkit"
    assert llmkit.LlmkitError.__doc__


def test_error_message_is_the_c_message():
    chain = llmkit.SamplerChain()
    with pytest.raises(ValueError) as e:
        chain.top_k(0)
    # The exception text is exactly llmkit_last_error_message() of this thread.
    assert str(e.value) == _llmkit.last_error_message()
    assert str(e.value).startswith("LLMKIT_ERROR_INVALID_ARGUMENT: ")
    assert "top_k: k must be >= 1, got 0" in str(e.value)
    assert e.value.status == "LLMKIT_ERROR_INVALID_ARGUMENT"
    assert e.value.status_code == -1
    assert _llmkit.status_string(e.value.status_code) == e.value.status


# ---------------------------------------------------------------------------
# Stubs and docstrings: every public name is documented and the stub's
# signatures match the runtime ones.
def _stub_tree():
    import importlib.util
    from pathlib import Path

    stub = Path(llmkit.__file__).with_name("__init__.pyi")
    assert stub.is_file(), f"missing {stub}"
    assert Path(llmkit.__file__).with_name("py.typed").is_file()
    return ast.parse(stub.read_text())


def _params(fn_node):
    a = fn_node.args
    out = [(p.arg, "pos") for p in a.posonlyargs + a.args]
    if a.vararg:
        out.append((a.vararg.arg, "var"))
    out += [(p.arg, "kw") for p in a.kwonlyargs]
    if a.kwarg:
        out.append((a.kwarg.arg, "varkw"))
    return out


def _runtime_params(fn):
    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: "pos",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "pos",
        inspect.Parameter.VAR_POSITIONAL: "var",
        inspect.Parameter.KEYWORD_ONLY: "kw",
        inspect.Parameter.VAR_KEYWORD: "varkw",
    }
    return [(p.name, kinds[p.kind]) for p in inspect.signature(fn).parameters.values()]


def test_stubs_cover_the_public_api():
    tree = _stub_tree()
    defined = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined[node.target.id] = node
    for name in llmkit.__all__:
        assert name in defined, f"{name} is public but not in __init__.pyi"
        obj = getattr(llmkit, name)
        node = defined[name]
        if isinstance(node, ast.FunctionDef):
            assert _params(node) == _runtime_params(obj), name
        if isinstance(node, ast.ClassDef) and name == "SamplerChain":
            methods = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
            public = [m for m in vars(llmkit.SamplerChain) if not m.startswith("_") or m in ("__init__", "__len__")]
            for m in public:
                attr = getattr(llmkit.SamplerChain, m)
                if isinstance(attr, property):
                    assert m in methods, f"SamplerChain.{m} missing from the stub"
                    continue
                assert m in methods, f"SamplerChain.{m} missing from the stub"
                assert _params(methods[m]) == _runtime_params(attr), f"SamplerChain.{m}"


def test_every_public_name_has_a_docstring():
    assert llmkit.__doc__
    for name in llmkit.__all__:
        if name == "__version__":
            continue
        obj = getattr(llmkit, name)
        assert inspect.getdoc(obj), f"llmkit.{name} has no docstring"
    for m, attr in vars(llmkit.SamplerChain).items():
        if m.startswith("_") and m not in ("__init__", "__len__"):
            continue
        if callable(attr) or isinstance(attr, property):
            assert inspect.getdoc(attr), f"SamplerChain.{m} has no docstring"
