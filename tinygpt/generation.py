"""Autoregressive sampling: predict a distribution, draw a token, append it, repeat.

With the KV cache (the default) each new token passes through the model alone
and attends to cached keys and values: O(T) work per token instead of
re-running the whole context, O(T^2). When the context reaches ``block_size``
the window slides: the cache is rebuilt from the most recent ``block_size // 2``
tokens and generation continues, so text of any length can be produced (the
model then sees between half and all of a block of context).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tinygpt import backend
from tinygpt.errors import ConfigError
from tinygpt.models.gpt import TinyGPT, token_ids
from tinygpt.progress import Progress
from tinygpt.tensor import Array, no_grad
from tinygpt.tokenizers import Tokenizer


def validate_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ConfigError naming the option and its allowed range."""
    if not temperature > 0:
        raise ConfigError(f"temperature (--temperature) must be > 0, got {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ConfigError(f"top_k (--top-k) must be an integer >= 1, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p (--top-p) must be in (0, 1], got {top_p}")


def filter_logits(
    logits: Array, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Array:
    """Next-token probabilities (B, V) from logits (B, V) after temperature, top-k and top-p.

    top-k keeps the k most likely tokens; top-p keeps the smallest set whose
    probability adds up to at least p (nucleus sampling). Both cut the long
    tail of unlikely characters that makes samples derail.
    """
    xp = backend.current().xp
    z = logits / temperature
    vocab = z.shape[-1]
    if top_k is not None and top_k < vocab:
        kth = xp.sort(z, axis=-1, descending=True)[:, top_k - 1 : top_k]
        z = xp.where(z < kth, -float("inf"), z)
    z = z - xp.max(z, axis=-1, keepdims=True)
    probs = xp.exp(z)
    probs = probs / xp.sum(probs, axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        ordered = xp.sort(probs, axis=-1, descending=True)
        before = xp.cumulative_sum(ordered, axis=-1) - ordered  # mass strictly above each token
        kept = xp.where(before < top_p, ordered, xp.inf)
        threshold = xp.min(kept, axis=-1, keepdims=True)  # smallest probability still kept
        probs = xp.where(probs >= threshold, probs, 0.0)
        probs = probs / xp.sum(probs, axis=-1, keepdims=True)
    return probs


def generate_stream(
    model: TinyGPT,
    ids: Sequence[Sequence[int]] | Array,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    rng: backend.Generator | None = None,
    use_cache: bool = True,
    greedy: bool = False,
    vocab_limit: int | None = None,
) -> Iterator[list[int]]:
    """Yield the next token of every row, one step at a time: lists of B ints.

    ``ids`` (B, T) is the prompt; ``greedy`` takes the most likely token
    instead of sampling. Without the cache, each step re-runs the last
    ``block_size`` tokens (the reference the cache is tested against).
    ``vocab_limit`` makes only ids below it possible: a model whose vocabulary
    is padded beyond its tokenizer's (common in Hugging Face models) never
    picks an id the tokenizer cannot decode.
    """
    validate_sampling(temperature, top_k, top_p)
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens (--max-new-tokens) must be >= 0, got {max_new_tokens}")
    rows = prompt_rows(ids)
    vocab = model.config.vocab_size
    if vocab_limit is not None and (type(vocab_limit) is not int or not 1 <= vocab_limit <= vocab):
        raise ConfigError(
            f"vocab_limit must be an integer in [1, {vocab}] (the model's vocabulary), got {vocab_limit!r}"
        )
    rng = rng or backend.Generator(seed)
    block = model.config.block_size
    b = backend.current()
    xp = b.xp
    allowed = None
    if vocab_limit is not None and vocab_limit < vocab:
        allowed = xp.arange(vocab, dtype=b.int_dtype, device=b.device)[None, :] < vocab_limit  # (1, V)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            caches = None
            if use_cache:
                caches = model.new_caches(len(rows))
                logits = model.next_token_logits(_ids([r[-block:] for r in rows]), caches).data
            else:
                logits = model.next_token_logits(_ids([r[-block:] for r in rows])).data
            for step in range(max_new_tokens):
                if allowed is not None:
                    logits = xp.where(allowed, logits, -xp.inf)
                if greedy:
                    nxt = backend.to_numpy(xp.argmax(logits, axis=-1)).tolist()
                else:
                    nxt = backend.to_numpy(
                        rng.categorical(filter_logits(logits, temperature, top_k, top_p))
                    ).tolist()
                for row, token in zip(rows, nxt, strict=True):
                    row.append(int(token))
                yield [int(t) for t in nxt]
                if step == max_new_tokens - 1:
                    break
                if caches is None:
                    logits = model.next_token_logits(_ids([r[-block:] for r in rows])).data
                elif caches[0].length < block:
                    logits = model.next_token_logits(_ids([[r[-1]] for r in rows]), caches).data
                else:  # window full: slide it by rebuilding the cache from recent tokens
                    caches = model.new_caches(len(rows))
                    keep = max(1, block // 2)
                    logits = model.next_token_logits(_ids([r[-keep:] for r in rows]), caches).data
    finally:
        model.train(was_training)


def prompt_rows(ids: Sequence[Sequence[int]] | Array) -> list[list[int]]:
    """Prompt ids (B, T) as B lists of ints, checked as the forward pass checks them (no float ids)."""
    return [[int(t) for t in row] for row in backend.to_numpy(token_ids(ids)).tolist()]


def _ids(rows: list[list[int]]) -> Array:
    return backend.asarray(rows, dtype=backend.current().int_dtype)


def generate(
    model: TinyGPT,
    ids: Sequence[Sequence[int]] | Array,
    max_new_tokens: int,
    show_progress: bool | None = False,
    **options: Any,
) -> list[list[int]]:
    """Prompt rows (B, T) plus ``max_new_tokens`` sampled tokens each: B lists of ints.

    ``show_progress=None`` shows a bar over the tokens when stderr is a terminal.
    """
    rows = prompt_rows(ids)
    with Progress(total=max_new_tokens, enabled=show_progress, desc="sample") as progress:
        for step in generate_stream(model, rows, max_new_tokens, **options):
            for row, token in zip(rows, step, strict=True):
                row.append(token)
            progress.update()
    return rows


class TextGeneration:
    """Text in, text out: a model and its tokenizer wrapped for sampling.

    A model may score more ids than its tokenizer has (Hugging Face models often pad the
    vocabulary to a round size): those ids are never sampled, so every output decodes.
    ``padded_ids`` says how many are excluded.
    """

    def __init__(self, model: TinyGPT, tokenizer: Tokenizer) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.padded_ids = max(0, model.config.vocab_size - tokenizer.vocab_size)

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        if self.padded_ids:
            return {"vocab_limit": self.tokenizer.vocab_size, **options}
        return options

    def prompt_ids(self, prompt: str, on_unknown: str = "error") -> list[int]:
        """The ids generation starts from; an empty prompt starts where the tokenizer says text begins."""
        return self.tokenizer.encode(prompt, on_unknown) if prompt else self.tokenizer.start_ids()

    def sample(
        self,
        prompt: str = "",
        max_new_tokens: int = 200,
        num_samples: int = 1,
        on_unknown: str = "error",
        **options: Any,
    ) -> list[str]:
        """``num_samples`` continuations of ``prompt`` (each including the prompt), generated as one batch."""
        if num_samples < 1:
            raise ConfigError(f"num_samples (--num-samples) must be >= 1, got {num_samples}")
        ids = self.prompt_ids(prompt, on_unknown)
        rows = generate(self.model, [ids] * num_samples, max_new_tokens, **self._options(options))
        start = 0 if prompt else len(ids)
        return [self.tokenizer.decode(r[start:]) for r in rows]

    def stream(
        self, prompt: str = "", max_new_tokens: int = 200, on_unknown: str = "error", **options: Any
    ) -> Iterator[str]:
        """Yield the continuation of ``prompt`` piece by piece as it is generated.

        Pieces are whole characters: a byte-level BPE token that ends inside a
        character (part of an emoji) is held back until the character is complete.

        The prompt and options are checked here, before the first character, so a
        caller that prints the prompt first never prints it above an error.
        """
        ids = self.prompt_ids(prompt, on_unknown)
        validate_sampling(options.get("temperature", 1.0), options.get("top_k"), options.get("top_p"))
        steps = generate_stream(self.model, [ids], max_new_tokens, **self._options(options))
        return self.tokenizer.decode_stream(step[0] for step in steps)
