"""Optional packages, imported only by the features that need them.

The core library needs NumPy, array-api-compat and safetensors only. The
pictures need matplotlib (``tinygpt[plot]``), the vision demo scikit-learn
(``tinygpt[vision]``). Each feature imports its package through ``require`` at
the moment it runs, so a missing package is one clear error, not an
``ImportError`` at ``import tinygpt``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tinygpt.errors import MissingExtraError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingExtraError(
            f"{purpose} needs {package}, which is not installed: pip install 'tinygpt[{extra}]'"
        ) from None
