"""Pictures of a run: loss curves, and what each attention head looks at.

Figures are drawn with matplotlib's object API on the Agg canvas (no window,
no global pyplot state), at a fixed size in pixels so they are reproducible:
``pip install 'tinygpt[plot]'``.

The attention picture shows ``TinyGPT.attention_maps``: the weights
softmax(q k^T / sqrt(d) + causal mask) each head of a layer computed while the
model read the prompt. Row i of a head's map is how much position i reads
from each earlier position; everything above the diagonal is the future the
causal mask hides.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tinygpt import backend
from tinygpt.errors import CheckpointError, ConfigError, ShapeError
from tinygpt.extras import require
from tinygpt.models.gpt import TinyGPT
from tinygpt.tensor import Array
from tinygpt.tokenizers import Tokenizer

DPI = 100
LOSS_FIGSIZE = (6.4, 4.0)  # inches: 640 x 400 pixels
HEAD_PANEL = 3.0  # inches per head in the attention grid


def _figure(figsize: tuple[float, float], layout: Any = None) -> Any:
    """A matplotlib Figure on the Agg canvas (never a GUI window)."""
    require("matplotlib", "plot", "drawing pictures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"pictures are written as PNG; give an --out path ending in .png, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)  # no bbox_inches="tight": the pixel size stays what figsize says
    return out


# Loss curves -------------------------------------------------------------------------


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The evaluation records of a run (``RUN_DIR/metrics.jsonl``), in step order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise CheckpointError(
            f"{path} does not exist; give the --out directory of `tinygpt train` (it writes metrics.jsonl)"
        )
    records = []
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue  # a line cut short by a kill, or not ours
        if isinstance(record, dict) and type(record.get("iter")) is int:
            records.append(record)
    if not records:
        raise CheckpointError(f"{path} holds no evaluation records yet; train for at least one eval interval")
    return sorted(records, key=lambda r: r["iter"])


def plot_loss_curves(run_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Draw train and validation loss against the training step into the PNG ``out``."""
    records = read_metrics(run_dir)
    steps = [r["iter"] for r in records]
    fig = _figure(LOSS_FIGSIZE)
    ax = fig.add_subplot()
    for key, label, style in (("train_loss", "train", "-o"), ("val_loss", "validation", "-s")):
        values = [r.get(key) if type(r.get(key)) in (int, float) else math.nan for r in records]
        ax.plot(steps, values, style, label=label, markersize=3)
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.set_title(f"loss: {Path(run_dir).name}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, out)


# Attention -----------------------------------------------------------------------------


def attention_maps(model: TinyGPT, ids: list[int], layer: int) -> Array:
    """Attention weights of every head of block ``layer`` for one prompt: (H, T, T), rows sum to 1."""
    config = model.config
    if not 0 <= layer < config.n_layer:
        raise ConfigError(
            f"layer {layer} does not exist: this model has {config.n_layer} layers, numbered 0 to "
            f"{config.n_layer - 1} (--layer)"
        )
    if not ids:
        raise ShapeError("the prompt is empty; give at least one character (--prompt)")
    if len(ids) > config.block_size:
        raise ShapeError(
            f"the prompt has {len(ids)} characters but the model sees at most block_size="
            f"{config.block_size}; shorten it (--prompt)"
        )
    tokens = backend.asarray([ids], dtype=backend.current().int_dtype)  # (1, T)
    return model.attention_maps(tokens)[layer][0, ...]


def _tick_label(token: str) -> str:
    """Make whitespace visible on an axis (a token is one character, or several with BPE)."""
    return "".join({"\n": "\\n", " ": "␣", "\t": "\\t"}.get(c, c) for c in token)


def head_grid(n_head: int) -> tuple[int, int]:
    """(rows, columns) of the attention picture: as square as possible (4 heads: 2 x 2)."""
    cols = math.ceil(math.sqrt(n_head))
    return math.ceil(n_head / cols), cols


def attention_figure_size(n_head: int) -> tuple[int, int]:
    """The (width, height) in pixels of the attention picture for ``n_head`` heads."""
    rows, cols = head_grid(n_head)
    return round((cols * HEAD_PANEL + 1.0) * DPI), round((rows * HEAD_PANEL + 0.4) * DPI)


def plot_attention(
    model: TinyGPT,
    tokenizer: Tokenizer,
    prompt: str,
    layer: int,
    out: str | os.PathLike[str],
) -> Path:
    """Draw each head's attention over ``prompt`` at block ``layer`` as a grid of heat maps."""
    ids = tokenizer.encode(prompt)
    probs = attention_maps(model, ids, layer)  # (H, T, T)
    xp = backend.current().xp
    t = len(ids)
    rows_i = xp.arange(t, device=probs.device)[:, None]
    cols_j = xp.arange(t, device=probs.device)[None, :]
    # The masked future becomes NaN so it is drawn as background, not as weight 0.
    shown = backend.to_numpy(xp.where(cols_j <= rows_i, probs, xp.full_like(probs, math.nan)))
    n_head = probs.shape[0]
    width, height = attention_figure_size(n_head)
    rows, cols = head_grid(n_head)
    fig = _figure((width / DPI, height / DPI), layout="constrained")
    labels = [_tick_label(tokenizer.decode([i])) for i in ids]  # one per token: a character, or a BPE piece
    fig.suptitle(f"layer {layer}: row = reading character, column = character read", fontsize=10)
    image = None
    for head in range(n_head):
        ax = fig.add_subplot(rows, cols, head + 1)
        image = ax.imshow(shown[head], vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(f"head {head}", fontsize=9)
        ax.set_xticks(range(t), labels, fontsize=7, fontfamily="monospace")
        ax.set_yticks(range(t), labels, fontsize=7, fontfamily="monospace")
        ax.set_facecolor("#eeeeee")
        ax.tick_params(length=0)
    if image is not None:
        fig.colorbar(image, ax=fig.axes, shrink=0.6, label="attention weight")
    return _save(fig, out)
