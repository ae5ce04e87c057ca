"""GPT-2 in Hugging Face's layout: config translation and weight names, in and out.

A Hugging Face GPT-2 directory holds ``config.json`` (GPT2Config's fields) and
``model.safetensors`` (or shards ``model-0000x-of-0000y.safetensors`` listed in
``model.safetensors.index.json``). tinygpt's TinyGPT is the same network:

    transformer.wte / wpe              -> wte / wpe                 (vocab, C) / (n_positions, C)
    transformer.h.N.ln_1 / ln_2        -> blocks.N.ln1 / ln2
    transformer.h.N.attn.c_attn        -> blocks.N.attn.qkv         weight (C, 3C): [q | k | v]
    transformer.h.N.attn.c_proj        -> blocks.N.attn.proj        weight (C, C)
    transformer.h.N.mlp.c_fc / c_proj  -> blocks.N.mlp.fc / proj    weight (C, 4C) / (4C, C)
    transformer.ln_f                   -> ln_f
    lm_head.weight                     -> tied to wte (not stored)

GPT-2's ``Conv1D`` stores weights (in, out), which is tinygpt's ``Dense``
layout too, so no weight is transposed. The ``attn.bias``/``attn.masked_bias``
buffers of old files are the causal mask, not parameters: they are ignored.
Pickled ``pytorch_model.bin`` files are never read (loading pickle runs code).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
from pathlib import Path
from typing import Any

from safetensors.numpy import save as st_save

from tinygpt.checkpoint.directory import FORMAT, checkpoint_file, read_json
from tinygpt.checkpoint.weight_files import SafetensorsFiles
from tinygpt.errors import CheckpointError, ConfigError
from tinygpt.files import json_bytes, listing, write_bytes_atomic
from tinygpt.models import GPTConfig, TinyGPT
from tinygpt.tokenizers import END_OF_TEXT, TOKENIZER_FILES, BPETokenizer, Tokenizer, huggingface_files

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
# GPT-2's tanh-form GELU under its names in transformers (gelu_fast is the same formula, expanded).
TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
# Options that change the network into one TinyGPT is not: (key, the value TinyGPT is, why).
FIXED = (
    ("scale_attn_weights", True, "attention scores divided by sqrt(head size)"),
    ("scale_attn_by_inverse_layer_idx", False, "scores further divided by the layer index"),
    ("reorder_and_upcast_attn", False, "attention upcast and reordered (Mistral's GPT-2 variant)"),
    ("add_cross_attention", False, "cross-attention to an encoder"),
    ("tie_word_embeddings", True, "the output head shares the token embedding"),
)
# GPT2Config's defaults, used as transformers uses them when config.json omits a key.
DEFAULTS = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12}
EXPORT_MARK = "tinygpt_export"  # a config.json key: {"files": {name: SHA-256}}, what tinygpt export wrote


def is_huggingface_config(data: Any) -> bool:
    """Whether a parsed ``config.json`` is a Hugging Face model's (not a tinygpt checkpoint's)."""
    return isinstance(data, dict) and data.get("format") != FORMAT and "model_type" in data


def config_from_gpt2(data: Any, source: str | Path) -> GPTConfig:
    """A GPTConfig from GPT2Config's fields (``config.json``), refusing what TinyGPT cannot represent."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{source} is not a JSON object; the file is corrupt")
    model_type = data.get("model_type")
    if model_type != "gpt2":
        raise CheckpointError(
            f"{source} describes a {model_type!r} model; tinygpt loads GPT-2 (model_type 'gpt2') only"
        )
    activation = data.get("activation_function", "gelu_new")
    if activation not in TANH_GELU:
        raise CheckpointError(
            f"{source}: activation_function {activation!r} is not GPT-2's tanh-form GELU; tinygpt "
            f"computes {' / '.join(TANH_GELU)} only, so this model would give different outputs"
        )
    for key, value, what in FIXED:
        if key in data and data[key] != value:
            raise CheckpointError(
                f"{source}: {key}={data[key]!r} ({what}) is not something TinyGPT has; "
                f"tinygpt loads GPT-2 models with {key}={value}"
            )
    values = {key: data.get(key, default) for key, default in DEFAULTS.items()}
    if data.get("n_positions") is None and data.get("n_ctx") is not None:
        values["n_positions"] = data["n_ctx"]  # very old configs name the context n_ctx only
    inner = data.get("n_inner")
    if inner is not None and inner != 4 * values["n_embd"]:
        raise CheckpointError(
            f"{source}: n_inner={inner!r}, but TinyGPT's MLP is 4 * n_embd = {4 * values['n_embd']} wide"
        )
    try:
        return GPTConfig(
            vocab_size=values["vocab_size"],
            block_size=values["n_positions"],
            n_layer=values["n_layer"],
            n_head=values["n_head"],
            n_embd=values["n_embd"],
            dropout=0.0,  # inference; fine-tuning sets its own with --dropout
            positional="learned",
            layer_norm_eps=data.get("layer_norm_epsilon", 1e-5),
        )
    except ConfigError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def gpt2_config(config: GPTConfig) -> dict[str, Any]:
    """GPT2Config's fields for a TinyGPT (what ``config.json`` of an exported directory holds)."""
    if config.positional != "learned":
        raise ConfigError(
            f"this model uses {config.positional} positions, which GPT-2 does not have (it learns a "
            "position table): only models trained with --positional learned can be exported"
        )
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": None,
        "eos_token_id": None,
        "torch_dtype": "float32",
    }


def weight_names(config: GPTConfig, prefix: str = "transformer.") -> dict[str, str]:
    """TinyGPT parameter name -> GPT-2 tensor name, for every parameter (the head is tied to wte)."""
    names = {"wte.weight": "wte.weight", "wpe.weight": "wpe.weight"}
    parts = {
        "ln1": "ln_1",
        "attn.qkv": "attn.c_attn",
        "attn.proj": "attn.c_proj",
        "ln2": "ln_2",
        "mlp.fc": "mlp.c_fc",
        "mlp.proj": "mlp.c_proj",
    }
    for i in range(config.n_layer):
        for ours, theirs in parts.items():
            for kind in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{kind}"] = f"h.{i}.{theirs}.{kind}"
    names |= {"ln_f.weight": "ln_f.weight", "ln_f.bias": "ln_f.bias"}
    return {ours: prefix + theirs for ours, theirs in names.items()}


def _weight_files(path: Path) -> list[Path]:
    """The safetensors files of a Hugging Face directory: model.safetensors, or the shards its index lists."""
    if (path / WEIGHTS).exists() or (path / WEIGHTS).is_symlink():
        return [checkpoint_file(path, WEIGHTS, "the directory")]
    if (path / INDEX).exists() or (path / INDEX).is_symlink():
        index = read_json(path, INDEX, 16 << 20, "the directory")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
            raise CheckpointError(f"{path / INDEX} has no weight_map of tensor -> file; the file is corrupt")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if Path(shard).name != shard or not shard.endswith(".safetensors"):
                raise CheckpointError(
                    f"{path / INDEX} lists {shard!r}, which is not a .safetensors file in the directory"
                )
        return [checkpoint_file(path, shard, "the directory") for shard in shards]
    pickled = [name for name in PICKLED if (path / name).exists()]
    if pickled:
        raise CheckpointError(
            f"{path} has only {pickled[0]}, a pickle, which tinygpt never loads (it can run code); get "
            "the safetensors weights: `huggingface-cli download gpt2 model.safetensors config.json "
            f"--local-dir {shlex.quote(str(path))}`, or convert with transformers: "
            "GPT2LMHeadModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)"
        )
    raise CheckpointError(f"{path} has a config.json but no {WEIGHTS} (nor {INDEX}); add the weights file")


def open_gpt2(path: Path, data: Any) -> tuple[GPTConfig, SafetensorsFiles, dict[str, str]]:
    """A Hugging Face GPT-2 directory's config (``data``: its config.json), its weight files (opened,
    headers checked: close them, or use them as a context manager) and the name mapping.

    Accepts names with or without the ``transformer.`` prefix (transformers writes it; the
    original OpenAI conversion does not).
    """
    config = config_from_gpt2(data, path / "config.json")
    tensors = SafetensorsFiles(_weight_files(path))
    prefix = "transformer." if "transformer.wte.weight" in tensors.where else ""
    return config, tensors, weight_names(config, prefix)


def end_of_text_id(tokenizer: Tokenizer) -> int | None:
    """GPT-2's ``<|endoftext|>`` id in a BPE vocabulary that has it (transformers stops generating there)."""
    if not isinstance(tokenizer, BPETokenizer):
        return None
    ids = tokenizer.encode(END_OF_TEXT)
    return ids[0] if len(ids) == 1 else None


def save_gpt2(path: str | os.PathLike[str], model: TinyGPT, tokenizer: Tokenizer | None = None) -> Path:
    """Write ``model`` as a Hugging Face GPT-2 directory: config.json, model.safetensors, the tokenizer files.

    ``transformers.GPT2LMHeadModel.from_pretrained(path)`` loads it, and with ``tokenizer``,
    ``AutoTokenizer.from_pretrained(path)`` too. Only those files are written, each
    atomically, so whatever else the directory holds (a model card, ``.git/``, evaluation results)
    stays. ``config.json`` records what the export wrote (``EXPORT_MARK``: name -> SHA-256); a
    re-export replaces those files and deletes the ones it no longer writes (vocab.json after a
    switch to a char tokenizer), but only while their bytes are still tinygpt's. A file tinygpt
    did not write is never overwritten or deleted: the export is refused, naming it, first.
    config.json, which marks the export, is written last; a reader loading the directory while an
    export into it runs may see files of both versions.
    """
    path = Path(path)
    hf_config = gpt2_config(model.config)
    names = weight_names(model.config)
    tensors = {names[name]: array.astype("float32") for name, array in model.state_dict().items()}
    written = {WEIGHTS: st_save(tensors, metadata={"format": "pt"})}  # "pt": transformers asks for it
    if tokenizer is not None:
        written |= huggingface_files(tokenizer)
        end = end_of_text_id(tokenizer)
        hf_config |= {"bos_token_id": end, "eos_token_id": end}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in written.items()}
    stale = _check_export_target(path, digests)
    hf_config[EXPORT_MARK] = {"files": dict(sorted(digests.items()))}
    for name, data in written.items():
        write_bytes_atomic(path / name, data)
    for file in stale:
        file.unlink(missing_ok=True)
    write_bytes_atomic(path / "config.json", json_bytes(hf_config))
    return path


# What an export may write: the only names a re-export ever deletes (when config.json lists them).
EXPORT_FILES = (WEIGHTS, *TOKENIZER_FILES)


def _earlier_export(path: Path) -> dict[str, str | None] | None:
    """What an earlier export wrote in ``path`` (name -> SHA-256, None when unknown); None if no export."""
    file = path / "config.json"
    if not (file.exists() or file.is_symlink()):
        return {}
    try:
        data = read_json(path, "config.json", where="the directory")
    except CheckpointError:
        return None
    mark = data.get(EXPORT_MARK) if isinstance(data, dict) else None
    if mark is True:  # tinygpt 0.1 marked its exports without listing the files
        return {name: None for name in ("config.json", *EXPORT_FILES)}
    listed = mark.get("files") if isinstance(mark, dict) else None
    if not isinstance(listed, dict):
        return None
    found: dict[str, str | None] = {"config.json": None}
    found |= {
        name: digest for name, digest in listed.items() if name in EXPORT_FILES and isinstance(digest, str)
    }
    return found


def _sha256(file: Path) -> str | None:
    """The file's SHA-256, or None unless it is a regular file (not a link, FIFO or folder)."""
    try:
        info = file.lstat()
        if not stat.S_ISREG(info.st_mode):
            return None
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def _check_export_target(path: Path, digests: dict[str, str]) -> list[Path]:
    """Refuse a target where the export would overwrite or delete a file it did not write; returns the
    files of an earlier export that this one does not write (to delete)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file; give a directory to export into (nothing was changed)")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{path} is not writable by this user; export to a directory you can write to")
    earlier = _earlier_export(path)
    if earlier is None:
        raise ConfigError(
            f"{path / 'config.json'} was not written by tinygpt export; refusing to overwrite it "
            "(nothing was changed): export to a new directory, or move that config.json away"
        )
    foreign = []
    for name, new_digest in digests.items():
        file = path / name
        if not (file.exists() or file.is_symlink()):
            continue
        if not stat.S_ISREG(file.lstat().st_mode):  # a link, a folder, a FIFO: not something we wrote
            foreign.append(name)
        elif name not in earlier and _sha256(file) != new_digest:  # the same bytes: an export cut short
            foreign.append(name)
    if foreign:
        raise ConfigError(
            f"{path} already holds {listing(foreign)}, which tinygpt did not write; refusing to overwrite "
            "(nothing was changed): move them away, or export to a new directory"
        )
    stale, changed = [], []
    for name, old_digest in earlier.items():
        file = path / name
        if name == "config.json" or name in digests or not (file.exists() or file.is_symlink()):
            continue
        if old_digest is not None and _sha256(file) == old_digest:
            stale.append(file)
        else:
            changed.append(name)
    if changed:
        raise ConfigError(
            f"{path} holds {listing(changed)} from an earlier export, changed since or not known to be "
            "tinygpt's; this export does not write it and would leave it beside a model it does not "
            "describe (nothing was changed): move it away, then export again"
        )
    return stale
