"""`dlq-tui config check`: every problem of the config file, one line each with its line number; exit 0 when none."""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_FAULT = 2


def run_config_check(path_flag: str | None) -> int:
    from dlq_tui.profiles import default_path, load
    from dlq_tui.text import plain
    from dlq_tui.ui.keymap import binding_ids

    path = Path(path_flag).expanduser() if path_flag else default_path()
    if not path_flag and not path.is_file():
        print(f"dlq-tui: no config file at {path} (nothing to check; see README, Connections)")
        return EXIT_OK
    config, problems = load(path, binding_ids=binding_ids())
    if problems and problems[0].unreadable:
        # The file itself could not be read: like any other fault, one line on stderr.
        print(f"dlq-tui: {plain(problems[0].render(path), limit=500)}", file=sys.stderr)
        return EXIT_FAULT
    for problem in problems:
        print(plain(problem.render(path), limit=2000))
    if problems:
        plural = "s" if len(problems) != 1 else ""
        print(f"dlq-tui: {len(problems)} problem{plural} in {path}", file=sys.stderr)
        return EXIT_PROBLEM
    names = ", ".join(sorted(config.profiles)) or "none"
    default = f"; default {config.default_profile}" if config.default_profile else ""
    remapped = f"; {len(config.keys)} key(s) remapped" if config.keys else ""
    print(plain(f"{path}: OK (profiles: {names}{default}{remapped})", limit=2000))
    return EXIT_OK
