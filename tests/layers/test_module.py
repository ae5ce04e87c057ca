"""Module and Parameter: traversal, tied parameters, state dicts, train/eval."""

from __future__ import annotations

import numpy as np
import pytest

from tinygpt import Dense, Dropout, LayerNorm, Module, Parameter, Tensor, backend
from tinygpt.errors import CheckpointError


class Tied(Module):
    """Two layers sharing one weight, like a GPT's tied embedding and head."""

    def __init__(self) -> None:
        self.encoder = Dense(3, 3)
        self.decoder = Dense(3, 3)
        self.decoder.weight = self.encoder.weight
        self.blocks = [LayerNorm(3), Dropout(0.1)]
        self.scale = Parameter([1.0, 2.0, 3.0])

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.blocks[0](self.encoder(x))) * self.scale


def test_named_parameters_use_dotted_attribute_names(xp_backend) -> None:
    names = [n for n, _ in Tied().named_parameters()]
    assert names == [
        "scale",
        "encoder.weight",
        "encoder.bias",
        "decoder.bias",
        "blocks.0.weight",
        "blocks.0.bias",
    ]


def test_tied_parameter_is_counted_once(xp_backend) -> None:
    model = Tied()
    params = model.parameters()
    assert len(params) == len({id(p) for p in params}) == 6
    assert model.num_parameters() == 3 + 9 + 3 + 3 + 3 + 3


def test_tied_parameter_gets_gradient_from_both_uses(xp_backend) -> None:
    model = Tied()
    model(Tensor(np.ones((2, 3)))).sum().backward()
    w = model.encoder.weight
    grad_both = w.grad.numpy()
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.decoder.weight = Parameter(w.numpy())  # untie: the encoder's gradient alone
    model(Tensor(np.ones((2, 3)))).sum().backward()
    assert not np.allclose(grad_both, w.grad.numpy())


def test_parameter_requires_grad_and_is_a_tensor(xp_backend) -> None:
    p = Parameter(np.zeros(3))
    assert isinstance(p, Tensor) and p.requires_grad and p.dtype == xp_backend.xp.float32


def test_state_dict_round_trip(xp_backend) -> None:
    source, target = Tied(), Tied()
    state = source.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    assert set(state) == {n for n, _ in source.named_parameters()}
    target.load_state_dict(state)
    for (name, a), (_, b) in zip(source.named_parameters(), target.named_parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
        assert b.data.device == xp_backend.device and b.dtype == xp_backend.xp.float32
    assert target.decoder.weight is target.encoder.weight  # still tied after loading


def test_state_dict_loads_on_another_backend() -> None:
    with backend.using("numpy"):
        state = Tied().state_dict()
    with backend.using("array_api_strict"):
        model = Tied()
        model.load_state_dict(state)
        np.testing.assert_array_equal(model.encoder.weight.numpy(), state["encoder.weight"])


def test_state_dict_is_a_copy(xp_backend) -> None:
    model = Tied()
    state = model.state_dict()
    state["scale"][0] = 100.0
    assert model.scale.numpy()[0] == 1.0


def test_load_state_dict_with_wrong_shape_raises(xp_backend) -> None:
    model = Tied()
    state = model.state_dict()
    state["encoder.bias"] = np.zeros(4, dtype=np.float32)
    with pytest.raises(CheckpointError, match="encoder.bias"):
        model.load_state_dict(state)


def test_load_state_dict_with_missing_or_unexpected_key_raises(xp_backend) -> None:
    model = Tied()
    state = model.state_dict()
    del state["scale"]
    with pytest.raises(CheckpointError, match="missing.*scale"):
        model.load_state_dict(state)
    state = model.state_dict()
    state["extra.weight"] = np.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected.*extra.weight"):
        model.load_state_dict(state)


def test_failed_load_leaves_parameters_unchanged(xp_backend) -> None:
    model = Tied()
    before = model.scale.numpy()
    state = model.state_dict()
    state["scale"] = np.zeros(3, dtype=np.float32)
    state["encoder.bias"] = np.zeros(5, dtype=np.float32)
    with pytest.raises(CheckpointError):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.scale.numpy(), before)


def test_train_and_eval_propagate_to_all_submodules(xp_backend) -> None:
    model = Tied()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    modules = list(model.modules())
    assert len(modules) == 5  # self, encoder, decoder, layer norm, dropout (in a list)
    assert not any(m.training for m in modules)
    model.train()
    assert all(m.training for m in modules)


def test_evaluating_turns_dropout_and_the_graph_off_then_restores_the_mode(xp_backend) -> None:
    model = Tied()
    x = Tensor(backend.asarray([[1.0, 2.0, 3.0]]))
    with model.evaluating():
        assert not any(m.training for m in model.modules())
        assert not model(x).requires_grad  # no graph is recorded
    assert all(m.training for m in model.modules())
    assert model(x).requires_grad
    with pytest.raises(RuntimeError, match="inside"), model.evaluating():
        raise RuntimeError("inside")
    assert all(m.training for m in model.modules())  # restored after an error too
    model.eval()
    with model.evaluating():
        pass
    assert not any(m.training for m in model.modules())  # a model in eval mode stays there


def test_module_without_forward_raises() -> None:
    with pytest.raises(TypeError, match="forward"):
        Module()(1)
