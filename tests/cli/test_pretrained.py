"""Pretrained models on the command line: Hugging Face directories for sample/eval/info, fine-tuning, export.

Every model and tokenizer is small, random or trained here on text written here.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from tests.cli.test_commands import assert_one_line_error, run_cli
from tinygpt import backend, load_model
from tinygpt.checkpoint import load_checkpoint
from tinygpt.tokenizers import BPETokenizer, huggingface_files

torch = pytest.importorskip("torch")
transformers = pytest.importorskip(
    "transformers", reason="the Hugging Face tests need transformers (extra hf)"
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = "the cat sat on a mat while rain fell over old towns and quiet rivers ran far".split()
TRAIN = ["--batch-size", "4", "--eval-iters", "2", "--warmup-iters", "0", "--no-progress"]


def make_text(n_words: int = 2500, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(n_words // 8)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "words.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory, text_file):
    """A random GPT-2 saved by transformers, with a BPE tokenizer trained on the test text."""
    tokenizer = BPETokenizer.train(text_file.read_text(encoding="utf-8"), 300)
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        vocab_size=tokenizer.vocab_size,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    path = tmp_path_factory.mktemp("hf") / "gpt2"
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    for name, data in huggingface_files(tokenizer).items():
        (path / name).write_bytes(data)
    return path


def copy_of(src, dst, without=()):
    dst.mkdir()
    for file in src.iterdir():
        if file.name not in without:
            (dst / file.name).write_bytes(file.read_bytes())
    return dst


# Reading a Hugging Face directory ----------------------------------------------------------------
def test_sample_info_and_eval_read_a_huggingface_directory(capsys, hf_dir, text_file):
    code, out, err = run_cli(
        capsys, "sample", "--checkpoint", hf_dir, "--prompt", "the cat", "--max-new-tokens", 5
    )
    assert code == 0, err
    assert out.startswith("the cat")
    code, out, err = run_cli(capsys, "info", "--checkpoint", hf_dir)
    assert code == 0 and "block_size=32" in out, err
    code, out, err = run_cli(capsys, "eval", "--checkpoint", hf_dir, "--text", text_file, "--json")
    assert code == 0, err
    assert json.loads(out)["val_loss"] > 0


def test_eval_of_a_pretrained_model_asks_for_text(capsys, hf_dir):
    code, _, err = run_cli(capsys, "eval", "--checkpoint", hf_dir)
    assert_one_line_error(code, err, "pretrained model", "--text")


def test_a_directory_without_tokenizer_files_says_which_to_add(capsys, hf_dir, tmp_path):
    bare = copy_of(
        hf_dir,
        tmp_path / "bare",
        without=("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"),
    )
    code, _, err = run_cli(capsys, "sample", "--checkpoint", bare)
    assert_one_line_error(code, err, "no tokenizer files", "tokenizer.json", "vocab.json and merges.txt")


def test_a_tokenizer_larger_than_the_model_is_refused(capsys, hf_dir, tmp_path):
    other = copy_of(hf_dir, tmp_path / "other")
    big = BPETokenizer.train(make_text(seed=3), 310)
    for name, data in huggingface_files(big).items():
        (other / name).write_bytes(data)
    code, _, err = run_cli(capsys, "info", "--checkpoint", other)
    assert_one_line_error(code, err, "310 tokens", "vocab_size=300")


def test_a_tokenizer_smaller_than_the_model_loads_but_is_not_fine_tuned(capsys, hf_dir, text_file, tmp_path):
    other = copy_of(hf_dir, tmp_path / "other")
    small = BPETokenizer.train(make_text(seed=3), 280)  # like a model whose vocabulary was padded
    for name, data in huggingface_files(small).items():
        (other / name).write_bytes(data)
    code, _, err = run_cli(capsys, "info", "--checkpoint", other)
    assert code == 0, err
    code, _, err = run_cli(
        capsys, "train", "--init-from", other, "--text", text_file, "--out", tmp_path / "ft", *TRAIN
    )
    assert_one_line_error(code, err, "300 token embeddings", "280 tokens")


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("pickle", "pytorch_model.bin"),
        ("truncate", "truncated"),
        ("config", "activation_function 'relu'"),
    ],
)
def test_damaged_directories_are_one_line_errors(capsys, hf_dir, tmp_path, damage, needle):
    bad = copy_of(hf_dir, tmp_path / "bad")
    weights = bad / "model.safetensors"
    if damage == "pickle":
        weights.rename(bad / "pytorch_model.bin")
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-64])
    else:
        config = json.loads((bad / "config.json").read_text())
        (bad / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    for command in ("sample", "info"):
        code, _, err = run_cli(capsys, command, "--checkpoint", bad)
        assert_one_line_error(code, err, needle)
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):  # the weights are the bigger problem
        (bad / name).unlink(missing_ok=True)
    code, _, err = run_cli(capsys, "sample", "--checkpoint", bad)
    assert_one_line_error(code, err, needle)


# Fine-tuning --------------------------------------------------------------------------------------
def test_fine_tune_starts_from_the_pretrained_weights_and_crops_the_context(
    capsys, hf_dir, text_file, tmp_path
):
    out = tmp_path / "ft"
    args = ["train", "--init-from", hf_dir, "--text", text_file, "--out", out, "--block-size", 16, *TRAIN]
    code, _, err = run_cli(
        capsys, *args, "--max-iters", 1, "--eval-interval", 1, "--lr", 1e-12, "--min-lr", 0
    )
    assert code == 0, err
    ckpt = load_checkpoint(out, which="latest")
    pretrained = load_checkpoint(hf_dir)
    assert ckpt.tokenizer == pretrained.tokenizer
    assert ckpt.model.config.block_size == 16
    ours, theirs = ckpt.model.state_dict(), pretrained.model.state_dict()
    np.testing.assert_allclose(ours["wpe.weight"], theirs["wpe.weight"][:16], atol=1e-6)
    np.testing.assert_allclose(ours["blocks.1.mlp.fc.weight"], theirs["blocks.1.mlp.fc.weight"], atol=1e-6)


def test_fine_tune_trains_resumes_evaluates_and_samples(capsys, hf_dir, text_file, tmp_path):
    out = tmp_path / "ft"
    args = ["train", "--init-from", hf_dir, "--text", text_file, "--out", out, "--block-size", 16, *TRAIN]
    code, _, err = run_cli(capsys, *args, "--max-iters", 4, "--eval-interval", 2)
    assert code == 0, err
    code, out_text, err = run_cli(
        capsys, "train", "--out", out, "--resume", "--max-iters", 6, "--no-progress"
    )
    assert code == 0, err
    assert "from step 4" in out_text
    assert json.loads((out / "latest.json").read_text())["checkpoint"].endswith("6")
    code, out_text, err = run_cli(capsys, "eval", "--checkpoint", out, "--json")
    assert code == 0, err
    assert "val_bpb" in json.loads(out_text)
    code, out_text, err = run_cli(
        capsys, "sample", "--checkpoint", out, "--prompt", "rain", "--max-new-tokens", 4
    )
    assert code == 0 and out_text.startswith("rain"), err


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--block-size", "64"], ["--block-size 64 is larger", "32 positions"]),
        (["--n-layer", "3"], ["--n-layer 3 conflicts", "n_layer=2"]),
        (["--tokenizer", "bpe"], ["--tokenizer conflicts with --init-from"]),
    ],
)
def test_fine_tune_refuses_flags_that_disagree_with_the_model(
    capsys, hf_dir, text_file, tmp_path, flags, needles
):
    code, _, err = run_cli(
        capsys, "train", "--init-from", hf_dir, "--text", text_file, "--out", tmp_path / "ft", *flags, *TRAIN
    )
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "ft" / "latest.json").exists()


# Export ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_a_trained_run_exports_to_transformers_with_the_same_logits_and_ids(
    capsys, text_file, tmp_path, tokenizer
):
    run, out = tmp_path / "run", tmp_path / "hf"
    vocab = ["--vocab-size", "300"] if tokenizer == "bpe" else []
    shape = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16"]
    code, _, err = run_cli(
        capsys, "train", "--text", text_file, "--out", run, "--tokenizer", tokenizer, *vocab, *shape, *TRAIN,
        "--max-iters", 3, "--eval-interval", 3,
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli(capsys, "export", "--checkpoint", run, "--out", out)
    assert code == 0, err
    ours = load_checkpoint(run)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    sample = "the cat\nran far"  # 15 characters: within the context
    ids = ours.tokenizer.encode(sample)
    assert their_tokenizer(sample)["input_ids"] == ids
    assert their_tokenizer.decode(ids) == sample
    end_of_text = ours.tokenizer.encode("<|endoftext|>") if tokenizer == "bpe" else [None]
    assert theirs.config.eos_token_id == end_of_text[0]  # generate() stops where GPT-2 ends a document
    with torch.no_grad():
        expected = theirs(torch.tensor([ids])).logits.numpy()
    np.testing.assert_allclose(backend.to_numpy(ours.model([ids]).data), expected, atol=1e-4, rtol=0)
    again = load_model(out)  # tinygpt reads its export back, tokenizer included
    assert load_checkpoint(out).tokenizer.encode(sample) == ids
    np.testing.assert_array_equal(
        backend.to_numpy(again([ids]).data), backend.to_numpy(ours.model([ids]).data)
    )


def test_export_refusals_are_one_line(capsys, text_file, tmp_path):
    run = tmp_path / "run"
    shape = [
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "8",
        "--block-size",
        "8",
        "--positional",
        "sinusoidal",
    ]
    code, _, err = run_cli(
        capsys,
        "train",
        "--text",
        text_file,
        "--out",
        run,
        *shape,
        *TRAIN,
        "--max-iters",
        1,
        "--eval-interval",
        1,
    )
    assert code == 0, err
    code, _, err = run_cli(capsys, "export", "--checkpoint", run, "--out", tmp_path / "hf")
    assert_one_line_error(code, err, "sinusoidal positions")
