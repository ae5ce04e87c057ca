"""Ranks without MPI: the launcher's variables, the one-process world, and how a global batch is shared out."""

import subprocess
import sys

import numpy as np
import pytest

from tests.lm_helpers import PYTHON, subprocess_env
from tinygpt import backend
from tinygpt.backend import registry
from tinygpt.errors import ConfigError, MissingExtraError
from tinygpt.training import distributed
from tinygpt.training.data_parallel import DataParallel, _buckets
from tinygpt.training.distributed import World

LAUNCHER_VARIABLES = [name for pair in distributed.LAUNCHERS for name in pair]


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(distributed, "_world", None)


def test_a_plain_process_is_a_world_of_one_that_needs_no_mpi(no_launcher):
    world = distributed.world()
    assert (world.rank, world.size, world.comm) == (0, 1, None) and world.is_main
    assert world.sum_floats([1.5, 2.0]) == [1.5, 2.0]
    assert world.gather_floats([3.0]) == [[3.0]]
    assert world.gather_text("x") == ["x"]
    world.barrier()
    world.agree()
    world.agree(RuntimeError("only this process failed"))  # nobody to tell


@pytest.mark.parametrize(
    ("variables", "rank", "size"),
    [
        ({"PMI_RANK": "1", "PMI_SIZE": "4"}, 1, 4),  # MPICH's mpiexec
        ({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "3"}, 2, 3),  # Open MPI's mpirun
        ({"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8"}, 5, 8),  # srun
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}, 0, 1),  # a batch script itself is one process
    ],
)
def test_rank_and_size_come_from_the_launchers_variables(no_launcher, monkeypatch, variables, rank, size):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert (distributed.launcher_rank(), distributed.launcher_size()) == (rank, size)


def test_under_a_launcher_without_mpi4py_the_error_names_the_extra(no_launcher, monkeypatch):
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"one of 2 .*pip install 'tinygpt\[mpi\]'"):
        distributed.world()


def test_plain_training_never_imports_mpi4py(tmp_path):
    (tmp_path / "t.txt").write_text("to be or not to be, that is the question\n" * 20, encoding="utf-8")
    code = (
        "import sys; from tinygpt.cli import main; "
        "rc = main(['train', '--text', 't.txt', '--out', 'run', '--n-layer', '1', '--n-embd', '8', "
        "'--n-head', '2', '--block-size', '8', '--max-iters', '2', '--eval-interval', '2', "
        "'--eval-iters', '1', '--no-progress']); "
        "assert rc == 0 and 'mpi4py' not in sys.modules and 'threadpoolctl' not in sys.modules"
    )
    env = subprocess_env()
    for name in LAUNCHER_VARIABLES:
        env.pop(name, None)
    result = subprocess.run([PYTHON, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "world size" not in result.stdout  # the one-process log is as before


def _ranks(size):
    return [DataParallel(World(rank=r, size=size)) for r in range(size)]


@pytest.mark.parametrize(("batch", "accum", "size"), [(12, 1, 2), (5, 3, 2), (4, 2, 3), (7, 1, 7), (3, 4, 5)])
def test_the_ranks_shares_are_the_global_batch_in_order_with_weights_summing_to_one(batch, accum, size):
    windows = np.arange(batch * accum * 2).reshape(batch * accum, 2)  # (M, T): row i is window i
    batches = [windows[i * batch : (i + 1) * batch] for i in range(accum)]
    rows, weights, counts = [], [], []
    for dp in _ranks(size):
        chunks, w = dp.share(batches)
        assert all(c.shape[0] <= batch for c in chunks)  # never more than one micro-batch in memory
        rows += [c for c in chunks]
        weights += w
        counts.append(sum(c.shape[0] for c in chunks))
    np.testing.assert_array_equal(np.concatenate(rows), windows)  # contiguous shares, nothing twice
    assert sum(weights) == pytest.approx(1.0)
    assert max(counts) - min(counts) <= 1  # as even as the numbers allow


def test_weighted_chunk_means_add_up_to_the_global_mean():
    losses = np.random.default_rng(0).random(15)  # one loss per window; batch 5 x grad-accum 3 over 2 ranks
    batches = [losses[i : i + 5] for i in range(0, 15, 5)]
    total = 0.0
    for dp in _ranks(2):
        chunks, weights = dp.share(batches)
        total += sum(float(c.mean()) * w for c, w in zip(chunks, weights, strict=True))
    assert total == pytest.approx(losses.mean(), rel=1e-12)


def test_a_global_batch_smaller_than_the_world_is_refused_with_the_numbers():
    with pytest.raises(ConfigError, match=r"= 3 windows per step cannot be shared by 4 ranks"):
        _ranks(4)[0].check_global_batch(3, "--batch-size x --grad-accum")
    with pytest.raises(ConfigError, match="at least 2 ranks"):
        DataParallel(World())


def test_gradient_buckets_hold_every_parameter_once_last_layers_first(xp_backend):
    from tests.lm_helpers import tiny_model

    params = tiny_model(10).parameters()
    limit = 4 * max(p.size for p in params)
    buckets = _buckets(params, limit)
    flat = [i for bucket in buckets for i in bucket]
    assert sorted(flat) == list(range(len(params))) and flat[0] == len(params) - 1
    assert len(buckets) > 1
    for bucket in buckets:
        assert sum(params[i].size * 4 for i in bucket) <= limit or len(bucket) == 1
    assert _buckets(params, 25 * 2**20) == [list(reversed(range(len(params))))]  # a small model: one call


def test_each_ranks_dropout_comes_from_seed_step_and_rank(xp_backend):
    a, b = _ranks(2)
    draws = []
    for dp, step in ((a, 3), (b, 3), (a, 3), (a, 4)):
        dp.seed_dropout(1337, step)
        draws.append(backend.to_numpy(backend.default_generator().uniform((4,))))
    assert not np.array_equal(draws[0], draws[1])  # ranks drop different units
    np.testing.assert_array_equal(draws[0], draws[2])  # a resumed rank repeats its masks
    assert not np.array_equal(draws[0], draws[3])


# Which GPU each rank takes -----------------------------------------------------------------
class FakeGPUs(backend.ArrayLibrary):
    """One rank's view of a GPU library: the GPUs it sees (CUDA numbers them 0..n-1) and their PCI bus ids."""

    name = "fakegpu"
    gpu_device = "gpu"
    devices = "gpu, gpu:N"
    default_on_gpu = True

    def __init__(self, bus_ids: list[str]) -> None:
        self.bus_ids, self.loaded = bus_ids, []

    def load(self, device):
        self.loaded.append(device)
        return np, device or "gpu:0"

    def device_is_host(self, device):
        return False

    def gpu_count(self):
        return len(self.bus_ids)

    def gpu_identity(self, device):
        return self.bus_ids[int(device.rpartition(":")[2])]


def _place(
    views: list[list[str]], monkeypatch, device: str | None = None
) -> tuple[list[FakeGPUs], list[bool]]:
    """Run ``use_local_gpu`` on every rank of one machine; ``views[r]``: the bus ids rank r sees."""
    monkeypatch.delenv("TINYGPT_DEVICE", raising=False)
    size = len(views)
    libraries = [FakeGPUs(view) for view in views]
    said: list[str] = []
    heard: list[str] = []

    class Rank(World):
        def gather_text(self, text):  # an all-gather in two passes: every rank speaks, then all hear
            said.append(text)
            return heard or [text]

    shared = []
    previous = backend.current()
    try:
        for _ in range(2):
            shared.clear()
            for r, library in enumerate(libraries):
                library.loaded.clear()
                monkeypatch.setitem(registry.LIBRARIES, "fakegpu", library)
                rank = Rank(rank=r, size=size, local_rank=r, local_size=size)
                shared.append(rank.use_local_gpu("fakegpu", device))
            heard = said[:size]
    finally:
        backend.use(previous.name, None)
    return libraries, shared


def test_slurm_gpus_per_task_gives_each_rank_its_own_gpu_numbered_0(monkeypatch):
    # --gpus-per-task=1: each rank sees one GPU, cuda:0, a different one for each rank
    libraries, shared = _place(
        [["0000:1A:00.0"], ["0000:1B:00.0"], ["0000:3D:00.0"], ["0000:3E:00.0"]], monkeypatch
    )
    assert [lib.loaded for lib in libraries] == [["gpu:0"]] * 4
    assert shared == [False] * 4  # one GPU per rank: NCCL stays on (before: 4 ranks > 1 GPU = "shared")


def test_each_rank_takes_the_gpu_of_its_local_rank_and_touches_no_other(monkeypatch):
    ids = ["0000:1A:00.0", "0000:1B:00.0", "0000:3D:00.0", "0000:3E:00.0"]
    libraries, shared = _place([ids] * 4, monkeypatch)
    assert [lib.loaded for lib in libraries] == [
        ["gpu:0"],
        ["gpu:1"],
        ["gpu:2"],
        ["gpu:3"],
    ]  # never gpu:0 first
    assert shared == [False] * 4


def test_more_ranks_than_gpus_share_them_and_say_so(monkeypatch):
    libraries, shared = _place([["0000:1A:00.0", "0000:1B:00.0"]] * 4, monkeypatch)
    assert [lib.loaded[0] for lib in libraries] == ["gpu:0", "gpu:1", "gpu:0", "gpu:1"]
    assert shared == [True] * 4


def test_a_device_named_for_every_rank_is_shared_only_if_it_is_one_gpu(monkeypatch):
    _, shared = _place([["0000:1A:00.0", "0000:1B:00.0"]] * 2, monkeypatch, device="gpu:0")
    assert shared == [True, True]  # both on the machine's first GPU
    _, shared = _place([["0000:1A:00.0"], ["0000:1B:00.0"]], monkeypatch, device="gpu:0")
    assert shared == [False, False]  # "gpu:0" of each rank's own view: two GPUs
