"""Hugging Face GPT-2 directories in and out: the same logits and tokens as transformers, and bad files refused.

Models are small and random, made here with transformers (nothing is downloaded).
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from tinygpt import GPTConfig, TinyGPT, backend, load_model, save_gpt2
from tinygpt.checkpoint import huggingface
from tinygpt.errors import CheckpointError, ConfigError
from tinygpt.generation import generate

torch = pytest.importorskip("torch")
transformers = pytest.importorskip(
    "transformers", reason="the Hugging Face tests need transformers (extra hf)"
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 61


def gpt2_model(**overrides):
    """A small random transformers GPT2LMHeadModel (wider init than GPT-2's, so greedy picks are clear)."""
    settings = dict(n_layer=2, n_head=2, n_embd=32, vocab_size=VOCAB, n_positions=64, initializer_range=0.1)
    settings |= dict(bos_token_id=0, eos_token_id=0, **overrides)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**settings)).eval()


@pytest.fixture
def gpt2_dir(tmp_path):
    model = gpt2_model()
    path = tmp_path / "gpt2"
    model.save_pretrained(path)
    return path, model


def transformers_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


def tinygpt_logits(model, ids):
    return backend.to_numpy(model(ids).data)


def random_ids(shape, seed=1):
    return np.random.default_rng(seed).integers(0, VOCAB, shape).tolist()


# Import -----------------------------------------------------------------------------------------
def test_a_transformers_model_loads_with_the_same_logits(xp_backend, gpt2_dir):
    path, theirs = gpt2_dir
    ours = load_model(path)
    ids = random_ids((3, 40))
    np.testing.assert_allclose(tinygpt_logits(ours, ids), transformers_logits(theirs, ids), atol=1e-4, rtol=0)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_continuation_equals_transformers_generate(xp_backend, gpt2_dir, use_cache):
    path, theirs = gpt2_dir
    ours = load_model(path)
    prompt = random_ids((1, 8), seed=2)
    with torch.no_grad():
        expected = theirs.generate(
            torch.tensor(prompt), max_new_tokens=20, do_sample=False, pad_token_id=0, eos_token_id=None
        )
    got = generate(ours, prompt, 20, greedy=True, use_cache=use_cache)
    assert got == expected.tolist()


def test_a_sharded_save_loads(tmp_path):
    theirs = gpt2_model()
    theirs.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    ours = load_model(tmp_path / "sharded")
    ids = random_ids((2, 16))
    np.testing.assert_allclose(tinygpt_logits(ours, ids), transformers_logits(theirs, ids), atol=1e-4, rtol=0)


def test_original_openai_names_without_prefix_and_with_mask_buffers_load(tmp_path, gpt2_dir):
    from safetensors.numpy import save_file

    path, theirs = gpt2_dir
    state = {k.removeprefix("transformer."): v.numpy() for k, v in theirs.state_dict().items()}
    state.pop("lm_head.weight", None)
    for i in range(2):  # the causal-mask buffers that OpenAI's conversion stored
        state[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), dtype=np.float32))
    save_file(state, str(path / "model.safetensors"))
    ids = random_ids((1, 10))
    np.testing.assert_allclose(
        tinygpt_logits(load_model(path), ids),
        transformers_logits(theirs, ids),
        atol=1e-4,
        rtol=0,
    )


def test_layer_norm_epsilon_is_honoured(tmp_path):
    theirs = gpt2_model(layer_norm_epsilon=0.5)
    theirs.save_pretrained(tmp_path / "eps")
    ours = load_model(tmp_path / "eps")
    assert ours.config.layer_norm_eps == 0.5
    ids = random_ids((1, 12))
    np.testing.assert_allclose(tinygpt_logits(ours, ids), transformers_logits(theirs, ids), atol=1e-4, rtol=0)


PUBLISHED = {  # OpenAI's four GPT-2 sizes: (n_layer, n_head, n_embd) and their parameter counts
    "gpt2": ((12, 12, 768), 124_439_808),
    "gpt2-medium": ((24, 16, 1024), 354_823_168),
    "gpt2-large": ((36, 20, 1280), 774_030_080),
    "gpt2-xl": ((48, 25, 1600), 1_557_611_200),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_the_four_gpt2_configs_translate(name):
    (n_layer, n_head, n_embd), parameters = PUBLISHED[name]
    data = transformers.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd).to_dict()
    data["n_ctx"] = 1024  # the published files carry both
    config = huggingface.config_from_gpt2(data, "config.json")
    assert (config.n_layer, config.n_head, config.n_embd) == (n_layer, n_head, n_embd)
    assert (config.vocab_size, config.block_size, config.layer_norm_eps) == (50257, 1024, 1e-5)
    assert config.num_parameters() == parameters


def test_an_old_config_with_only_n_ctx_takes_its_context_from_it():
    config = huggingface.config_from_gpt2({"model_type": "gpt2", "n_ctx": 256, "n_positions": None}, "c")
    assert config.block_size == 256


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("activation_function", "relu", "'relu'"),
        ("scale_attn_by_inverse_layer_idx", True, "scale_attn_by_inverse_layer_idx"),
        ("reorder_and_upcast_attn", True, "reorder_and_upcast_attn"),
        ("add_cross_attention", True, "add_cross_attention"),
        ("tie_word_embeddings", False, "tie_word_embeddings"),
        ("n_inner", 100, "n_inner=100"),
        ("model_type", "llama", "'llama'"),
        ("n_head", 5, "divisible"),
    ],
)
def test_configs_tinygpt_cannot_represent_are_refused_by_name(key, value, named):
    data = {**transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32).to_dict(), key: value}
    with pytest.raises(CheckpointError, match=named):
        huggingface.config_from_gpt2(data, "config.json")


# Damaged and hostile directories -----------------------------------------------------------------
def test_pickle_only_directory_is_refused_with_the_way_to_get_safetensors(gpt2_dir):
    path, _ = gpt2_dir
    (path / "model.safetensors").rename(path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin.*pickle.*model\.safetensors"):
        load_model(path)


def test_a_truncated_weights_file_names_the_file_and_a_tensor(gpt2_dir):
    path, _ = gpt2_dir
    file = path / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor '.+' lies at .* truncated"):
        load_model(path)


def test_a_header_longer_than_the_file_is_refused(gpt2_dir):
    path, _ = gpt2_dir
    file = path / "model.safetensors"
    file.write_bytes(struct.pack("<Q", 1 << 40) + file.read_bytes()[8:])
    with pytest.raises(CheckpointError, match=r"model\.safetensors .*header length"):
        load_model(path)


def _resave(path, change):
    from safetensors.numpy import load_file, save_file

    state = load_file(str(path / "model.safetensors"))
    change(state)
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})


def test_a_missing_tensor_is_named(gpt2_dir):
    path, _ = gpt2_dir
    _resave(path, lambda s: s.pop("transformer.h.1.mlp.c_fc.bias"))
    with pytest.raises(CheckpointError, match=r"lacks tensor 'transformer\.h\.1\.mlp\.c_fc\.bias'"):
        load_model(path)


def test_a_shape_that_disagrees_with_config_json_is_named(gpt2_dir):
    path, _ = gpt2_dir
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "n_positions": 128}))
    with pytest.raises(
        CheckpointError, match=r"tensor 'transformer\.wpe\.weight' has shape \[64, 32\].*\[128, 32\]"
    ):
        load_model(path)


def test_a_wrong_dtype_is_named(gpt2_dir):
    path, _ = gpt2_dir
    _resave(path, lambda s: s.update({"transformer.ln_f.bias": s["transformer.ln_f.bias"].astype(np.int32)}))
    with pytest.raises(CheckpointError, match=r"'transformer\.ln_f\.bias' has dtype I32"):
        load_model(path)


def test_float16_weights_are_widened(gpt2_dir):
    path, theirs = gpt2_dir
    _resave(path, lambda s: s.update({k: v.astype(np.float16) for k, v in s.items()}))
    ids = random_ids((1, 8))
    np.testing.assert_allclose(
        tinygpt_logits(load_model(path), ids),
        transformers_logits(theirs, ids),
        atol=0.05,
        rtol=0,
    )


def test_nan_weights_are_named(gpt2_dir):
    path, _ = gpt2_dir

    def poison(state):
        state["transformer.h.0.attn.c_proj.weight"][3, 4] = np.nan

    _resave(path, poison)
    with pytest.raises(CheckpointError, match=r"'transformer\.h\.0\.attn\.c_proj\.weight' holds NaN"):
        load_model(path)


def test_a_symlink_out_of_the_directory_is_refused(tmp_path, gpt2_dir):
    path, _ = gpt2_dir
    (path / "model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    (path / "model.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    with pytest.raises(CheckpointError, match="symbolic link out of"):
        load_model(path)


def test_a_shard_outside_the_directory_is_refused(tmp_path):
    gpt2_model().save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    index = tmp_path / "sharded" / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["transformer.wte.weight"] = "../../etc/passwd.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="not a .safetensors file in the directory"):
        load_model(tmp_path / "sharded")


def test_a_model_larger_than_free_memory_is_refused_before_allocating(gpt2_dir, monkeypatch):
    path, _ = gpt2_dir
    monkeypatch.setattr(backend, "available_memory", lambda: 1000)
    with pytest.raises(CheckpointError, match=r"parameters .* only .* GiB is free"):
        load_model(path)


# Export -----------------------------------------------------------------------------------------
def test_an_exported_model_loads_in_transformers_with_the_same_logits(xp_backend, tmp_path):
    ours = TinyGPT(
        GPTConfig(vocab_size=VOCAB, block_size=24, n_layer=2, n_head=4, n_embd=16, layer_norm_eps=1e-3)
    )
    save_gpt2(tmp_path / "out", ours)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    ids = random_ids((2, 24))
    np.testing.assert_allclose(transformers_logits(theirs, ids), tinygpt_logits(ours, ids), atol=1e-4, rtol=0)
    again = load_model(tmp_path / "out")  # and back: the round trip is exact
    np.testing.assert_array_equal(tinygpt_logits(again, ids), tinygpt_logits(ours, ids))


def test_sinusoidal_models_cannot_be_exported(tmp_path):
    model = TinyGPT(GPTConfig(vocab_size=10, n_layer=1, n_head=2, n_embd=8, positional="sinusoidal"))
    with pytest.raises(ConfigError, match="sinusoidal positions, which GPT-2 does not have"):
        save_gpt2(tmp_path / "out", model)
    assert not (tmp_path / "out").exists()


def test_load_model_also_reads_a_tinygpt_run_directory(tmp_path):
    from tinygpt.checkpoint import save_checkpoint
    from tinygpt.tokenizers import CharTokenizer

    model = TinyGPT(GPTConfig(vocab_size=3, n_layer=1, n_head=2, n_embd=8))
    save_checkpoint(tmp_path / "run" / "checkpoints" / "step-1", model, CharTokenizer("abc"))
    (tmp_path / "run" / "best.json").write_text('{"checkpoint": "checkpoints/step-1"}')
    loaded = load_model(tmp_path / "run")
    ids = [[0, 1, 2, 1]]
    np.testing.assert_array_equal(tinygpt_logits(loaded, ids), tinygpt_logits(model, ids))
