"""Console scripts that belong to the interpreter running the tests."""

from __future__ import annotations

import sysconfig
from pathlib import Path


def installed_script(name: str) -> str:
    """The script pip installed beside this interpreter, never whatever `name` happens to be on PATH: a stale
    install elsewhere would test other code, and a fresh machine has none."""
    found = Path(sysconfig.get_path("scripts")) / name
    if not found.exists():
        raise FileNotFoundError(f"{found} is missing: install the package first (pip install -e '.[test]')")
    return str(found)


def console_script() -> str:
    return installed_script("dlq-tui")
