"""The binding ids `[keys]` in the config file may remap (Textual's keymap: binding id -> key)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from textual.binding import Binding
from textual.dom import DOMNode


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


@lru_cache(maxsize=1)
def binding_ids() -> frozenset[str]:
    """Every binding id of dlq-tui's app, screens, dialogs and widgets."""
    import dlq_tui.ui as package

    # Some screens are imported only when first opened: import every ui module so that each is seen.
    for module in pkgutil.walk_packages(package.__path__, prefix="dlq_tui.ui."):
        importlib.import_module(module.name)
    ids: set[str] = set()
    for cls in _subclasses(DOMNode):
        if not cls.__module__.startswith("dlq_tui."):
            continue
        for binding in cls.__dict__.get("BINDINGS", []):
            if isinstance(binding, Binding) and binding.id:
                ids.add(binding.id)
    return frozenset(ids)
