"""The tutorial runs: every ```python block of README.md and docs/*.md is executed, page by page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinygpt import backend
from tinygpt.errors import MissingExtraError

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README = DOCS.parent / "README.md"  # the first page: its Python example runs too
# Packages of tinygpt's extras that a page may import itself (the rest go through tinygpt.extras).
OPTIONAL = {"tokenizers", "matplotlib", "sklearn", "transformers", "torch", "jax", "mpi4py", "cupy"}
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
CONCEPT_PAGES = (
    "quickstart.md",
    "tokenization.md",
    "positional-encoding.md",
    "attention.md",
    "layer-norm-and-residuals.md",
    "transformer-block.md",
    "loss.md",
    "training.md",
    "sampling.md",
    "kv-cache.md",
    "vision-and-language.md",
)


def python_blocks(page: Path) -> list[str]:
    return PYTHON_BLOCK.findall(page.read_text(encoding="utf-8"))


PAGES_WITH_CODE = [page for page in [README, *PAGES] if python_blocks(page)]


@pytest.mark.parametrize(
    "page", PAGES_WITH_CODE, ids=[p.relative_to(DOCS.parent).as_posix() for p in PAGES_WITH_CODE]
)
def test_python_snippets_run_in_order(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    monkeypatch.chdir(tmp_path)  # snippets that write files write here
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    with backend.using("numpy"), backend.default_float("float32"):
        backend.manual_seed(0)
        for i, block in enumerate(blocks):
            code = compile(block, f"{page.name} [python block {i + 1}]", "exec")
            try:
                exec(code, namespace)
            except MissingExtraError as exc:  # e.g. BPE without the [bpe] extra: skip, saying which
                pytest.skip(f"{page.name} block {i + 1}: {exc}")
            except ModuleNotFoundError as exc:
                if exc.name not in OPTIONAL:
                    raise
                pytest.skip(
                    f"{page.name} block {i + 1} imports {exc.name}, an optional package not installed"
                )


@pytest.mark.parametrize("name", CONCEPT_PAGES)
def test_concept_page_exists_with_a_snippet_and_a_real_module(name):
    page = DOCS / name
    assert page.exists(), f"docs/{name} is missing"
    assert python_blocks(page), f"docs/{name} has no runnable python snippet"
    text = page.read_text(encoding="utf-8")
    modules = re.findall(r"`(tinygpt/[\w/]+\.py)`", text)
    if name != "quickstart.md":
        assert modules, f"docs/{name} does not point at the module that implements it"
    for module in modules:
        assert (DOCS.parent / module).exists(), f"docs/{name} points at {module}, which does not exist"


def test_index_links_every_page_and_every_link_resolves():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in PAGES:
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_pictures_are_small_pngs():
    pictures = sorted((DOCS / "img").glob("*.png"))
    assert {p.name for p in pictures} >= {"loss-curve.png", "attention.png"}
    for picture in pictures:
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert picture.stat().st_size < 150_000, f"{picture.name} is {picture.stat().st_size} bytes"
