"""The CLI tests run the commands in-process on NumPy: the commands are the same on every backend,
which the library tests and tests/test_backends_agree.py cover."""

import pytest

from tinygpt import backend


@pytest.fixture(autouse=True)
def _numpy_backend():
    with backend.using("numpy"):
        yield
