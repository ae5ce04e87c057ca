"""Sampling: the KV cache matches a full forward pass, filters do what they say, options are checked."""

import math

import numpy as np
import pytest

from tests.lm_helpers import host, tiny_model
from tinygpt import backend
from tinygpt.errors import ConfigError, ShapeError, TokenizerError
from tinygpt.generation import TextGeneration, filter_logits, generate, generate_stream
from tinygpt.tensor import no_grad
from tinygpt.tokenizers import CharTokenizer

VOCAB = 11
BLOCK = 12


def _model(positional="learned", **overrides):
    # Weights of std 0.5 give well-separated logits, so greedy choices have no near-ties.
    settings = {"block_size": BLOCK, "n_layer": 2, "n_embd": 16, "n_head": 2, "positional": positional}
    settings.update(overrides)
    return tiny_model(VOCAB, seed=3, weight_std=0.5, **settings).eval()


PROMPT = [[1, 4, 2, 9], [7, 0, 3, 3]]


# KV cache ------------------------------------------------------------------------
@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_cached_incremental_logits_equal_full_forward(xp_backend, positional):
    model = _model(positional)
    ids = backend.asarray(np.random.default_rng(0).integers(0, VOCAB, (2, BLOCK)))
    with no_grad():
        full = host(model(ids).data)  # (B, T, V)
        caches = model.new_caches(2)
        pieces = [host(model(ids[:, :3], caches).data)]  # a 3-token prompt, then one token at a time
        for t in range(3, BLOCK):
            pieces.append(host(model(ids[:, t : t + 1], caches).data))
    incremental = np.concatenate(pieces, axis=1)
    assert incremental.shape == full.shape
    np.testing.assert_allclose(incremental, full, rtol=1e-5, atol=1e-5)


def test_greedy_output_identical_with_and_without_cache(xp_backend):
    model = _model()
    n_new = BLOCK - len(PROMPT[0])  # the whole sequence still fits in one block
    cached = generate(model, PROMPT, n_new, greedy=True, use_cache=True)
    uncached = generate(model, PROMPT, n_new, greedy=True, use_cache=False)
    assert cached == uncached
    assert all(len(row) == BLOCK for row in cached)
    assert [row[:4] for row in cached] == PROMPT


def test_generate_accepts_a_backend_array_prompt(xp_backend):
    model = _model()
    rows = generate(model, backend.asarray(PROMPT), 3, greedy=True)
    assert rows == generate(model, PROMPT, 3, greedy=True)


def test_generation_restores_training_mode():
    model = _model().train()
    generate(model, PROMPT, 2, seed=0)
    assert model.training


# Seeds ---------------------------------------------------------------------------
def test_sampling_with_a_seed_is_reproducible(xp_backend):
    model = _model()
    first = generate(model, PROMPT, 20, seed=42, temperature=1.5)
    second = generate(model, PROMPT, 20, seed=42, temperature=1.5)
    other = generate(model, PROMPT, 20, seed=43, temperature=1.5)
    assert first == second
    assert first != other


def test_sampling_with_an_explicit_generator_is_reproducible():
    model = _model()
    a = generate(model, PROMPT, 10, rng=backend.Generator(5))
    b = generate(model, PROMPT, 10, rng=backend.Generator(5))
    assert a == b


# filter_logits -------------------------------------------------------------------
LOGITS = [[0.3, 2.0, -1.0, 1.1, 0.9, -0.2, 1.7], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0]]


def _softmax(x):
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_top_k_keeps_exactly_the_k_most_likely(xp_backend, k):
    logits = np.array(LOGITS, dtype=np.float32)
    probs = host(filter_logits(backend.asarray(logits), top_k=k))
    for row, p in zip(logits, probs, strict=True):
        kept = set(np.flatnonzero(p > 0))
        assert kept == set(np.argsort(-row)[:k])
        np.testing.assert_allclose(p[sorted(kept)], _softmax(row[sorted(kept)]), rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


def test_top_k_at_least_vocabulary_keeps_everything(xp_backend):
    logits = np.array(LOGITS, dtype=np.float32)
    probs = host(filter_logits(backend.asarray(logits), top_k=100))
    np.testing.assert_allclose(probs, _softmax(logits), rtol=1e-5)


@pytest.mark.parametrize(
    ("top_p", "kept"),
    [(0.3, 1), (0.45, 1), (0.7, 2), (0.85, 3), (0.97, 4), (1.0, 4)],
)
def test_top_p_keeps_the_smallest_nucleus(xp_backend, top_p, kept):
    # probabilities 0.5, 0.3, 0.15, 0.05: the nucleus of p is the fewest tokens whose mass reaches p
    p = np.array([[0.15, 0.5, 0.05, 0.3]])
    probs = host(filter_logits(backend.asarray(np.log(p).astype(np.float32)), top_p=top_p))[0]
    order = [1, 3, 0, 2]
    assert set(np.flatnonzero(probs > 0)) == set(order[:kept])
    expected = np.zeros(4)
    expected[order[:kept]] = p[0, order[:kept]] / p[0, order[:kept]].sum()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)


def test_top_k_and_top_p_combine(xp_backend):
    logits = np.array(LOGITS, dtype=np.float32)
    probs = host(filter_logits(backend.asarray(logits), top_k=3, top_p=0.999))
    assert (probs > 0).sum(axis=-1).tolist() == [3, 3]


@pytest.mark.parametrize("temperature", [0.25, 1.0, 3.0])
def test_temperature_divides_the_logits(xp_backend, temperature):
    logits = np.array(LOGITS, dtype=np.float32)
    probs = host(filter_logits(backend.asarray(logits), temperature=temperature))
    np.testing.assert_allclose(probs, _softmax(logits / temperature), rtol=1e-5, atol=1e-7)


def test_low_temperature_approaches_greedy_and_high_temperature_uniform():
    logits = backend.asarray(np.array(LOGITS, dtype=np.float32))
    cold = host(filter_logits(logits, temperature=1e-3))
    hot = host(filter_logits(logits, temperature=1e3))
    assert cold.argmax(axis=-1).tolist() == [1, 0]
    assert cold.max() > 0.999
    np.testing.assert_allclose(hot, 1 / 7, atol=2e-3)


# Bad options ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": -3}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": -0.1}, "top_p"),
        ({"top_p": math.nan}, "top_p"),
    ],
)
def test_bad_sampling_options_raise_config_error_naming_the_option(options, named):
    model = _model()
    with pytest.raises(ConfigError, match=named):
        generate(model, PROMPT, 3, **options)
    with pytest.raises(ConfigError, match=named):
        next(iter(generate_stream(model, PROMPT, 3, **options)))


def test_negative_max_new_tokens_is_refused():
    with pytest.raises(ConfigError, match="max_new_tokens"):
        generate(_model(), PROMPT, -1)


def test_zero_new_tokens_returns_the_prompt():
    assert generate(_model(), PROMPT, 0) == PROMPT


# Past block_size -----------------------------------------------------------------
@pytest.mark.parametrize("use_cache", [True, False])
def test_generating_past_block_size_slides_the_window(xp_backend, use_cache):
    model = _model()
    n_new = 3 * BLOCK + 5
    rows = generate(model, PROMPT, n_new, seed=0, use_cache=use_cache)
    assert [len(r) for r in rows] == [len(PROMPT[0]) + n_new] * 2
    assert all(0 <= t < VOCAB for r in rows for t in r)


def test_prompt_longer_than_block_size_is_cropped():
    model = _model()
    prompt = [[i % VOCAB for i in range(2 * BLOCK + 1)]]
    rows = generate(model, prompt, BLOCK + 2, greedy=True)
    assert len(rows[0]) == len(prompt[0]) + BLOCK + 2
    assert rows[0][: len(prompt[0])] == prompt[0]


def test_sliding_window_keeps_greedy_cache_close_to_recompute():
    # Past block_size the cache restarts from the last block_size // 2 tokens while the
    # uncached path sees a full block; both must still agree on the first block exactly.
    model = _model()
    cached = generate(model, PROMPT, 2 * BLOCK, greedy=True, use_cache=True)
    uncached = generate(model, PROMPT, 2 * BLOCK, greedy=True, use_cache=False)
    assert [r[:BLOCK] for r in cached] == [r[:BLOCK] for r in uncached]


# TextGeneration ------------------------------------------------------------------
TEXT = "hello world\n"


def _text_generation():
    tokenizer = CharTokenizer.from_text(TEXT)
    model = tiny_model(tokenizer.vocab_size, seed=1, weight_std=0.5, block_size=8)
    return TextGeneration(model, tokenizer), tokenizer


def test_text_generation_sample_returns_num_samples_continuations():
    gen, tokenizer = _text_generation()
    samples = gen.sample("he", max_new_tokens=20, num_samples=3, seed=0)
    assert len(samples) == 3
    for s in samples:
        assert s.startswith("he")
        assert len(s) == 22
        assert set(s) <= set(tokenizer.chars)
    assert len(set(samples)) > 1  # different rows draw differently


def test_text_generation_without_prompt_returns_only_new_text():
    gen, _ = _text_generation()
    assert len(gen.sample("", max_new_tokens=15, seed=0)[0]) == 15


def test_stream_yields_one_character_at_a_time_matching_sample():
    gen, tokenizer = _text_generation()
    pieces = list(gen.stream("wo", max_new_tokens=25, seed=7))
    assert len(pieces) == 25
    assert all(len(p) == 1 and p in tokenizer.chars for p in pieces)
    assert "wo" + "".join(pieces) == gen.sample("wo", max_new_tokens=25, seed=7)[0]


def test_sample_rejects_zero_samples():
    gen, _ = _text_generation()
    with pytest.raises(ConfigError, match="num_samples"):
        gen.sample("he", 5, num_samples=0)


def test_prompt_with_unseen_character_raises_tokenizer_error_naming_it():
    gen, _ = _text_generation()
    with pytest.raises(TokenizerError, match="'é'"):
        gen.sample("hé", 5)
    with pytest.raises(TokenizerError, match="'Z'"):
        gen.stream("Z", 5)  # raised when asked, not on the first character


def test_stream_with_byte_level_bpe_yields_whole_characters_matching_sample():
    pytest.importorskip("tokenizers")
    from tinygpt.tokenizers import BPETokenizer

    # Bytes only, so every emoji or CJK character the model writes spans several tokens.
    tokenizer = BPETokenizer.train("日本語 🙂 café\n" * 20, 257)
    model = tiny_model(tokenizer.vocab_size, seed=3, weight_std=0.5, block_size=16)
    gen = TextGeneration(model, tokenizer)
    pieces = list(gen.stream("🙂", max_new_tokens=40, seed=5))
    assert "🙂" + "".join(pieces) == gen.sample("🙂", max_new_tokens=40, seed=5)[0]
    assert all(p for p in pieces)  # incomplete bytes are held back, never yielded as ''


# A vocabulary padded beyond the tokenizer --------------------------------------------
def _padded_generation(padding=53):
    """A model scoring ``padding`` more ids than its tokenizer has, weighted so it prefers them."""
    tokenizer = CharTokenizer.from_text(TEXT)
    model = tiny_model(tokenizer.vocab_size + padding, seed=1, weight_std=0.5, block_size=8)
    return TextGeneration(model, tokenizer), tokenizer


def test_padded_ids_are_never_sampled_on_any_backend(xp_backend):
    gen, tokenizer = _padded_generation()
    [text] = gen.sample("he", 8, seed=0)
    assert len(text) == 10 and set(text) <= set(tokenizer.chars)


def test_padded_ids_are_never_sampled_and_every_sample_decodes():
    gen, tokenizer = _padded_generation()
    assert gen.padded_ids == 53
    unmasked = generate(gen.model, [tokenizer.encode("he")], 60, seed=0)[0]
    assert max(unmasked) >= tokenizer.vocab_size  # without the limit the padding would be drawn
    for options in ({"seed": 0}, {"seed": 1, "top_k": 60}, {"seed": 2, "top_p": 0.99}, {"greedy": True}):
        [text] = gen.sample("he", 60, **options)
        assert len(text) == 62 and set(text) <= set(tokenizer.chars)
        assert "he" + "".join(gen.stream("he", 60, **options)) == text


def test_vocab_limit_keeps_ids_below_it_and_is_checked():
    model = _model()
    rows = generate(model, PROMPT, 50, seed=0, vocab_limit=3)
    assert all(t < 3 for row in rows for t in row[len(PROMPT[0]) :])
    for bad in (0, VOCAB + 1, 2.5):
        with pytest.raises(ConfigError, match=rf"vocab_limit must be an integer in \[1, {VOCAB}\]"):
            generate(model, PROMPT, 1, vocab_limit=bad)


# Prompts are checked as the forward pass checks them ---------------------------------
@pytest.mark.parametrize("call", [generate, lambda *a: list(generate_stream(*a))])
def test_float_prompt_ids_are_refused_not_truncated(call):
    with pytest.raises(
        ShapeError, match=r"token ids must be integers, got dtype .*float.*round them with int\(\)"
    ):
        call(_model(), [[1.7, 2.2]], 3)


def test_a_1d_prompt_says_prompts_are_b_by_t_and_how_to_wrap_one():
    with pytest.raises(
        ShapeError, match=r"shape \(B, T\), got a 1-D sequence of 2 ids; for one sequence pass \[ids\]"
    ):
        generate(_model(), [1, 2], 5)
