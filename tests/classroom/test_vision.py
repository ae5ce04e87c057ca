"""The vision demo: the language model's parts train an image classifier."""

from __future__ import annotations

import json

import pytest

from tinygpt import backend
from tinygpt.classroom.vision import digits_classifier, load_digits, shuffled_indices, train_digits
from tinygpt.layers import Dense, ReLU, Sequential

pytest.importorskip("sklearn")


def test_digits_mlp_reaches_95_percent_test_accuracy(xp_backend):
    result = train_digits(epochs=12, seed=0)
    assert result["test_accuracy"] >= 0.95, result
    assert result["backend"] == xp_backend.name
    assert result["test_images"] + result["train_images"] == 1797


def test_digits_split_is_disjoint_and_scaled_to_unit_range(xp_backend):
    data = load_digits(test_fraction=0.25, seed=3)
    xp = xp_backend.xp
    assert data.x_train.shape[1] == 64 and data.x_test.shape[0] == 449
    assert float(backend.to_numpy(xp.max(data.x_train))) == 1.0
    assert float(backend.to_numpy(xp.min(data.x_test))) == 0.0
    assert data.y_train.dtype == xp_backend.int_dtype


def test_shuffled_indices_is_a_seeded_permutation(xp_backend):
    a = backend.to_numpy(shuffled_indices(50, backend.Generator(7))).tolist()
    b = backend.to_numpy(shuffled_indices(50, backend.Generator(7))).tolist()
    assert sorted(a) == list(range(50)) and a == b and a != list(range(50))


def test_classifier_is_built_from_the_shared_dense_layers():
    model = digits_classifier(hidden=16)
    assert isinstance(model, Sequential)
    assert [type(layer) for layer in model.layers] == [Dense, ReLU, Dense]
    assert model.num_parameters() == 64 * 16 + 16 + 16 * 10 + 10


def test_vision_command_prints_json_with_accuracy_and_seconds(capsys):
    from tinygpt.cli import main

    assert main(["vision", "--epochs", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["seconds"] > 0


def test_missing_scikit_learn_names_the_extra_to_install(monkeypatch):
    import sys

    from tinygpt.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'tinygpt\[vision\]'"):
        load_digits()
