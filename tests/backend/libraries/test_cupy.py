"""The CuPy backend, three ways.

1. Everywhere (no CuPy needed): the NCCL vote and the id's host round trip.
2. The CuPy contract, on a CPU-only machine with ``cupy-cuda12x`` 14.x, NCCL,
   NVRTC and cuRAND installed (``nox -s cupy-contract``; ``TINYGPT_REQUIRE_CUPY=1``
   turns its skips into failures): every CuPy, cupyx and NCCL name the backend's
   source uses exists and takes the arguments it is given, the NCCL id reaches
   ``NcclCommunicator`` as the type it takes, the GELU kernel compiles with NVRTC.
3. On a GPU (skipped without one): NCCL with one rank, dropout masks, free memory, TF32 off.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tinygpt import backend
from tinygpt.backend import collectives
from tinygpt.backend.libraries import cupy as cupy_library
from tinygpt.backend.library import tf32_allowed
from tinygpt.errors import BackendError

SOURCE = Path(cupy_library.__file__)
REQUIRED = os.environ.get("TINYGPT_REQUIRE_CUPY") == "1"


def _need(*modules: str):
    """Import ``modules`` (``cupy.cuda.nccl`` loads libnccl) or skip; fail where the contract session requires them."""
    found = []
    for module in modules:
        try:
            found.append(_resolve(module))
        except (ImportError, AttributeError) as exc:
            if REQUIRED:
                pytest.fail(f"TINYGPT_REQUIRE_CUPY=1 but {module} cannot be imported: {exc}")
            pytest.skip(f"{module} cannot be imported ({exc}): nox -s cupy-contract installs it")
    return found[0] if len(found) == 1 else found


class Ranks:
    """Plays rank 0 of ``size``: the other ranks vote ``others_vote`` each, and every wait is recorded."""

    rank = 0

    def __init__(self, size: int = 2, others_vote: float | None = None) -> None:
        self.size, self.others_vote, self.calls = size, others_vote, []
        self.inside: list[str] = []  # the watchdog blocks open right now

    def sum_floats(self, values):
        self.calls.append("vote")
        return [v + (self.size - 1) * (v if self.others_vote is None else self.others_vote) for v in values]

    def broadcast(self, buffer, root=0):
        self.calls.append("broadcast")  # rank 0's own buffer is the result

    def all_reduce_sum(self, buffer):
        raise AssertionError("set-up sums go through sum_floats")

    @contextlib.contextmanager
    def waiting(self, what):
        self.calls.append(f"waiting: {what}")
        self.inside.append(what)
        try:
            yield
        finally:
            self.inside.pop()


# 1. Everywhere ----------------------------------------------------------------------------------
def test_ranks_sharing_a_gpu_vote_nccl_down_and_say_why():
    ranks = Ranks()
    communicator, why = cupy_library.LIBRARY.device_collectives(ranks, True, None)
    assert communicator is None and "share a GPU" in why and "as many ranks" in why
    assert ranks.calls == ["vote"]  # one small float sum; before, the vote was a buffer sum that broke


def test_one_rank_that_cannot_use_nccl_keeps_every_rank_off_it(monkeypatch):
    monkeypatch.setattr(cupy_library, "_load_nccl", lambda shared: (object(), ""))  # this rank could
    ranks = Ranks(size=4, others_vote=0.0)  # the three others cannot
    communicator, why = cupy_library.LIBRARY.device_collectives(ranks, False, None)
    assert communicator is None and "another rank cannot use NCCL" in why
    assert ranks.calls == ["vote"]  # no id is made, nobody waits in NCCL's set-up


def test_the_nccl_id_travels_as_128_bytes_and_comes_back_as_bytes():
    uid = bytes(range(128))  # NCCL_UNIQUE_ID_BYTES, with values above 127 a signed char would mangle
    host = cupy_library.nccl_id_to_host(uid)
    assert host.dtype == np.uint8 and host.shape == (128,)
    back = cupy_library.nccl_id_from_host(host)
    assert type(back) is bytes and back == uid


@pytest.mark.parametrize("uid", [tuple(range(-64, 64)), b"short"])
def test_an_nccl_id_of_cupy_13_or_the_wrong_length_is_refused_with_the_fix(uid):
    with pytest.raises(BackendError, match=r"128 bytes \(CuPy >= 14\).*pip install -U"):
        cupy_library.nccl_id_to_host(uid)


def test_tf32_is_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv("TINYGPT_TF32", raising=False)
    assert not tf32_allowed()
    monkeypatch.setenv("TINYGPT_TF32", "1")
    assert tf32_allowed()
    monkeypatch.setenv("TINYGPT_TF32", "yes")
    with pytest.raises(BackendError, match="TINYGPT_TF32='yes': use 1"):
        tf32_allowed()


# 2. The contract: CuPy installed, no GPU needed ----------------------------------------------------
def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted module path, for every import of cupy, cupyx, CUDA or array_api_compat's cupy."""
    roots = ("cupy", "cupyx", "cuda", "cupy_backends")
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in roots or alias.name == "array_api_compat.cupy":
                    found[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in roots:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def _chain(node: ast.AST) -> list[str] | None:
    """['cupy', 'cuda', 'Device'] for cupy.cuda.Device; ['self', 'communicator', 'allReduce'] likewise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def _receivers() -> dict[str, object]:
    """What the source's variable names hold (by the backend's naming): each checked like a module."""
    import cupy
    from cupy.cuda import nccl

    array = cupy.ndarray
    return {
        "gpu": cupy.cuda.Device,
        "device": cupy.cuda.Device,
        "self.device": cupy.cuda.Device,
        "generator": cupy.random.RandomState,
        "stream": cupy.cuda.Stream.null,
        "self.communicator": nccl.NcclCommunicator,
        "communicator": nccl.NcclCommunicator,
        "flat.data": cupy.cuda.MemoryPointer,
        "flat": array,
        "array": array,
        "draw": array,
        "out": array,
    }


def _resolve(path: str):
    """The module or attribute a dotted path names (``cupy.cuda.curand`` is an attribute, loaded lazily)."""
    import importlib

    try:
        return importlib.import_module(path)
    except ImportError:
        parent, _, name = path.rpartition(".")
        if not parent:
            raise
        return getattr(importlib.import_module(parent), name)


def _uses():
    """(dotted name, object it resolves to or None, the ast.Call if called) for each CuPy use in the source."""
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    aliases, receivers = _aliases(tree), _receivers()
    calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue  # only the longest chain: cupy.cuda.Device, not also cupy.cuda
        chain = _chain(node)
        if chain is None:
            continue
        for width in (2, 1):  # "self.device" before "device"
            head = ".".join(chain[:width])
            if head in receivers:
                obj, rest = receivers[head], chain[width:]
                break
            if width == 1 and head in aliases:
                obj, rest = _resolve(aliases[head]), chain[1:]
                break
        else:
            continue
        name, found = ".".join(chain), obj
        for part in rest:
            found = getattr(found, part, None)
            if found is None:
                break
        uses.append((name, found, calls.get(id(node))))
    return tree, uses


def test_every_cupy_name_the_backend_uses_exists():
    _need("cupy", "cupy.cuda.nccl", "cupy.cuda.curand")
    _tree, uses = _uses()
    assert len(uses) > 25, "the source walk found too few CuPy uses: it no longer sees them"
    seen = {name for name, _, _ in uses}
    for expected in (
        "cupy.cuda.runtime.getDeviceCount",
        "nccl.NcclCommunicator",
        "cupyx.scatter_add",
        "self.communicator.allReduce",
        "generator.random_sample",
        "pathfinder.load_nvidia_dynamic_lib",
    ):
        assert expected in seen
    missing = sorted(name for name, found, _ in uses if found is None)
    assert not missing, f"names the CuPy backend uses that this CuPy lacks: {missing}"


_SIGNATURE = re.compile(r"^\s*(?:[\w.]+\.)?\w+\((.*)\)")


def _signature(obj) -> inspect.Signature | None:
    """Python's signature, else the one Cython writes on a docstring's first line ("f(int a, bytes b=None)")."""
    with contextlib.suppress(ValueError, TypeError):
        return inspect.signature(obj)
    match = _SIGNATURE.match(
        (getattr(obj, "__doc__", None) or "").strip().splitlines()[0] if obj.__doc__ else ""
    )
    if not match:
        return None
    params, depth, current = [], 0, ""
    for ch in match.group(1) + ",":
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            params.append(current.strip())
            current = ""
        else:
            current += ch
    out = []
    for text in filter(None, params):
        if text == "*":
            continue
        declaration, _, default = text.partition("=")
        name = declaration.split()[-1].lstrip("*")
        kind = (
            inspect.Parameter.VAR_POSITIONAL
            if declaration.split()[-1].startswith("*")
            else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        if declaration.split()[-1].startswith("**"):
            kind = inspect.Parameter.VAR_KEYWORD
        out.append(inspect.Parameter(name, kind, default=None if default else inspect.Parameter.empty))
    return inspect.Signature(out)


def _argument_count(call: ast.Call, tree: ast.AST) -> int:
    count = 0
    for arg in call.args:
        if isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Name):  # *GELU_KERNEL: a module tuple
            value = next(
                n.value
                for n in ast.walk(tree)
                if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == arg.value.id for t in n.targets)
            )
            count += len(value.elts)
        else:
            count += 1
    return count


def test_every_cupy_call_fits_the_signature_cupy_has():
    _need("cupy", "cupy.cuda.nccl", "cupy.cuda.curand")
    tree, uses = _uses()
    checked, wrong = 0, []
    for name, found, call in uses:
        if call is None or found is None:
            continue
        signature = _signature(found)
        if signature is None:
            continue
        params = list(signature.parameters.values())
        if params and params[0].name == "self" and not inspect.isclass(found):
            signature = signature.replace(parameters=params[1:])  # a method called on an instance
        try:
            signature.bind(
                *[None] * _argument_count(call, tree), **{k.arg: None for k in call.keywords if k.arg}
            )
            checked += 1
        except TypeError as exc:
            wrong.append(f"{name}{signature}: line {call.lineno}: {exc}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 10


def test_the_nccl_id_reaches_nccl_communicator_as_the_type_it_takes():
    _need("cupy")
    nccl = _need("cupy.cuda.nccl")
    uid = nccl.get_unique_id()  # needs no GPU
    assert isinstance(uid, bytes) and len(uid) == cupy_library.NCCL_ID_BYTES
    back = cupy_library.nccl_id_from_host(cupy_library.nccl_id_to_host(uid))
    assert back == uid
    declared = nccl.NcclCommunicator.__doc__.strip().splitlines()[
        0
    ]  # "NcclCommunicator(int ndev, bytes commId, ..."
    assert re.search(r"\b(\w+) commId\b", declared).group(1) == type(back).__name__
    try:
        nccl.NcclCommunicator(1, back, 0)  # on a GPU: a communicator of one
    except nccl.NcclError:
        pass  # no GPU here: NCCL got as far as CUDA, so every argument was accepted


def test_nccl_set_up_runs_inside_the_watchdog():
    cupy = _need("cupy")
    _need("cupy.cuda.nccl")
    ranks = Ranks(size=1)
    from cupy.cuda import nccl

    def communicator_made():
        return cupy_library.LIBRARY.device_collectives(ranks, False, contextlib.nullcontext())

    if cupy.is_available():
        made, why = communicator_made()
        assert made is not None and why is None
    else:
        with pytest.raises(nccl.NcclError):  # no GPU: CUDA refuses, after every Python-side step passed
            communicator_made()
    assert ranks.calls[:2] == ["vote", "broadcast"]
    assert ranks.calls[2].startswith("waiting: NCCL's set-up")


def test_the_gelu_kernel_compiles_with_nvrtc_and_contracts_to_fma():
    _need("cupy")
    from cuda import pathfinder

    try:
        pathfinder.load_nvidia_dynamic_lib("nvrtc")
    except pathfinder.DynamicLibNotFoundError as exc:
        if REQUIRED:
            pytest.fail(f"NVRTC cannot be loaded: {exc}")
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc-cu12)")
    from cupy_backends.cuda.libs import nvrtc

    in_params, out_params, body, _name = cupy_library.GELU_KERNEL
    assert (in_params, out_params) == ("T x", "T y, T slope")
    source = "".join(
        f'extern "C" __global__ void gelu_{t}(const {t}* xs, {t}* ys, {t}* slopes, int n) {{\n'
        f"  typedef {t} T;\n  const int i = blockIdx.x * blockDim.x + threadIdx.x;\n  if (i >= n) return;\n"
        f"  const T x = xs[i];\n  T y, slope;\n{body}\n  ys[i] = y;\n  slopes[i] = slope;\n}}\n"
        for t in ("float", "double")
    )
    program = nvrtc.createProgram(source, "tinygpt_gelu.cu", (), ())
    try:
        try:
            nvrtc.compileProgram(program, ("-arch=compute_90", "--std=c++17"))
        except nvrtc.NVRTCError:
            pytest.fail(f"the GELU kernel does not compile:\n{nvrtc.getProgramLog(program)}")
        ptx = (
            nvrtc.getPTX(program).decode()
            if isinstance(nvrtc.getPTX(program), bytes)
            else nvrtc.getPTX(program)
        )
    finally:
        nvrtc.destroyProgram(program)
    assert ".entry gelu_float" in ptx and ".entry gelu_double" in ptx
    # NVRTC fuses a * b + c into one rounding: why the kernel equals the op-by-op form only to rounding.
    assert "fma.rn.f32" in ptx


def test_a_missing_cuda_library_is_named_with_its_pip_command(monkeypatch):
    _need("cupy")
    from cuda import pathfinder

    real = pathfinder.load_nvidia_dynamic_lib
    loadable = {}
    for library, _what, _extra in cupy_library.CUDA_LIBRARIES:
        try:
            real(library)
            loadable[library] = True
        except pathfinder.DynamicLibNotFoundError:
            loadable[library] = False
    problem = cupy_library.cuda_library_problem(12)
    first_missing = next((lib for lib, ok in loadable.items() if not ok), None)
    if first_missing is None:
        assert problem is None
    else:  # the contract session installs NVRTC and cuRAND, not cuBLAS
        assert f"pip install 'cuda-toolkit[{first_missing}]==12.*'" in problem

    def without_curand(name):
        if name == "curand":
            raise pathfinder.DynamicLibNotFoundError('Failure finding "libcurand.so.10"')
        return None

    monkeypatch.setattr(pathfinder, "load_nvidia_dynamic_lib", without_curand)
    problem = cupy_library.cuda_library_problem(13)
    assert problem.count("\n") == 0 and "cuRAND" in problem
    assert "pip install 'cuda-toolkit[curand]==13.*'" in problem and "tinygpt[cuda13]" in problem


class _Device:
    """A stand-in for cupy.cuda.Device: an id, a context, memory numbers."""

    id = 3
    mem_info = (100, 1000)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_dropout_masks_come_from_one_generator_per_gpu_reseeded_from_the_host(monkeypatch):
    cupy, _ = _need("cupy", "cupy.cuda.curand")
    made, seeds = [], []

    class Philox:
        def __init__(self, seed, method):
            made.append(method)
            self.rng = np.random.default_rng(seed)

        def seed(self, seed):
            seeds.append(seed)
            self.rng = np.random.default_rng(seed)

        def random_sample(self, shape, dtype):
            return self.rng.random(shape, dtype=np.float32)

    monkeypatch.setattr(cupy.random, "RandomState", Philox)
    monkeypatch.setattr(cupy_library, "_MASK_GENERATORS", {})

    def mask(host):
        return cupy_library.LIBRARY.keep_mask(host, (4, 5), 0.5, np.float32, _Device(), None)

    first = mask(np.random.default_rng(7))
    again = mask(np.random.default_rng(7))
    other = mask(np.random.default_rng(8))
    from cupy.cuda import curand

    assert made == [curand.CURAND_RNG_PSEUDO_PHILOX4_32_10]  # one generator for three masks
    assert len(seeds) == 3 and seeds[0] == seeds[1] != seeds[2]  # each mask seeded by the host stream
    np.testing.assert_array_equal(first, again)
    assert set(np.unique(first)) <= {0.0, 2.0} and not np.array_equal(first, other)


def test_free_memory_counts_the_blocks_cupys_pool_keeps(monkeypatch):
    cupy = _need("cupy")

    class Pool:
        def free_bytes(self):
            return 28

    monkeypatch.setattr(cupy, "get_default_memory_pool", Pool)
    assert cupy_library.LIBRARY.free_memory(_Device()) == 128


# 3. On a GPU -------------------------------------------------------------------------------------
@pytest.fixture
def gpu():
    try:
        with backend.using("cupy") as active:
            yield active
    except BackendError as exc:
        pytest.skip(f"needs a CUDA GPU: {exc}")


def test_nccl_with_one_rank_sums_and_broadcasts_on_the_gpu(gpu):
    ranks = Ranks(size=1)
    together = collectives.Collectives(ranks)
    assert together.method == "device communicator (NCCL)" and together.warning is None
    x = backend.asarray(np.arange(5, dtype=np.float32))
    np.testing.assert_array_equal(backend.to_numpy(together.all_reduce_sum(x)), np.arange(5))
    np.testing.assert_array_equal(backend.to_numpy(together.broadcast(x, 0)), np.arange(5))
    assert "waiting: an NCCL allReduce over all ranks" in ranks.calls
    assert "waiting: an NCCL broadcast over all ranks" in ranks.calls


def test_gpu_masks_repeat_with_the_host_state_and_keep_the_right_share(gpu):
    g = backend.Generator(5)
    state = g.get_state()
    first = backend.to_numpy(g.keep_mask((256, 256), 0.9))
    g.set_state(state)
    np.testing.assert_array_equal(backend.to_numpy(g.keep_mask((256, 256), 0.9)), first)
    assert abs((first > 0).mean() - 0.9) < 0.01
    assert len(cupy_library._MASK_GENERATORS) == 1


def test_free_memory_on_the_gpu_does_not_drop_when_the_pool_keeps_a_freed_block(gpu):
    import cupy

    block = cupy.empty(256 * 2**20, dtype=cupy.uint8)
    del block  # back to CuPy's pool, not to CUDA: device.mem_info alone shows 256 MiB fewer
    cuda_free = gpu.device.mem_info[0]
    assert backend.available_memory() - cuda_free >= 200 * 2**20  # other test processes may allocate too
    assert re.fullmatch(
        r"[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]", gpu.library.gpu_identity(gpu.device)
    )


def test_float32_matrix_products_are_full_float32_unless_tf32_is_asked_for(gpu):
    if tf32_allowed() or os.environ.get("CUPY_TF32") == "1":
        pytest.skip("TF32 was asked for")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((512, 512)), rng.standard_normal((512, 512))
    got = backend.to_numpy(backend.asarray(a) @ backend.asarray(b))
    error = np.abs(got - a @ b).max() / np.abs(a @ b).max()
    assert error < 1e-5  # TF32's 10-bit mantissa gives about 1e-3
