"""Bits per byte: loss per token turned into a measure that does not depend on the tokenizer."""

import math

import pytest

from tinygpt.errors import ConfigError
from tinygpt.training import bits_per_byte


def test_bits_per_byte_by_hand():
    # 100 tokens of 2.0 nats each cost 200 nats = 288.539 bits, spread over 250 bytes of text.
    assert bits_per_byte(2.0, 100, 250) == pytest.approx(200 / math.log(2) / 250, rel=1e-15)
    assert bits_per_byte(2.0, 100, 250) == pytest.approx(1.154156, abs=1e-6)


def test_one_token_per_byte_is_loss_in_bits():
    # A char tokenizer over ASCII text: one token per byte, so bpb = loss / ln 2.
    assert bits_per_byte(1.5, 1000, 1000) == pytest.approx(1.5 / math.log(2), rel=1e-15)


@pytest.mark.parametrize(("tokens", "nbytes"), [(0, 10), (10, 0)])
def test_an_empty_split_has_no_bits_per_byte(tokens, nbytes):
    with pytest.raises(ConfigError, match="bits per byte needs tokens and bytes"):
        bits_per_byte(1.0, tokens, nbytes)
