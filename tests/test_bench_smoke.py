"""CI smoke run of the benchmark runner at N=1k: every measurement is produced (timings are not judged here)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from bench.run import main
from tests.support import pg


@pytest.mark.skipif(shutil.which("tmux") is None, reason="the start-up measurement drives the app in tmux")
def test_runner_produces_every_measurement_at_1k(pg_server: pg.TestServer, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    prefix = f"smoke_{uuid.uuid4().hex[:8]}"
    args = ["--dsn", pg_server.admin_dsn, "--db-prefix", prefix, "--out", str(out), "--quiet"]
    args += ["--sizes", "1k", "--migration-sizes", "1k", "--triage-size", "1k", "--app-size", "1k"]
    args += ["--redrive-size", "1k"]
    args += [
        "--repeats",
        "3",
        "--triage-seconds",
        "1",
        "--app-pages",
        "3",
        "--startup-repeats",
        "1",
        "--table-keys",
        "5",
    ]
    assert main(args) == 0

    results = json.loads(out.read_text())
    machine = results["machine"]
    assert machine["nproc"] >= 1 and machine["postgresql"] and len(machine["load_before"]) == 3

    reads = results["reads"]["1000"]
    for key in ("page_first", "page_deep", "page_middle", "page_first_all", "page_deep_all", "health"):
        assert reads[key]["n"] == 3 and reads[key]["median"] > 0, key
    assert "Index" in reads["explain_first"] and "Execution Time" in reads["explain_deep"]
    assert reads["health_figures"]["pending"] + reads["health_figures"]["processed"] == 1000
    for key in ("fast", "before", "one_read", "view"):
        assert reads["health_tiers"][key]["n"] == 3 and reads["health_tiers"][key]["median"] > 0, key
    assert reads["insert_1000"]["with_health_indexes"]["n"] == reads["insert_1000"]["without_health_indexes"]["n"] == 3

    triage = results["triage"]
    assert triage["operators"] == 4 and triage["resolved"] > 0 and triage["events_per_s"] > 0

    migration = results["migration"]["1000+3dup"]
    assert migration["total_s"] > 0 and migration["writer_inserts"] > 0 and migration["worst_block_ms"] > 0
    assert migration["rows_without_checksum"] == 0
    assert migration["rows_without_key"] == 3  # the three later duplicates, as the spec wants
    assert [s[0] for s in migration["steps"]][-1] == "commit"

    redrive = results["redrive"]
    assert redrive["redriven"] == 1000 and redrive["events_per_s"] > 0 and redrive["failed"] == 0
    assert all(r["n"] > 0 for r in redrive["repair_us"].values())

    app = results["app"]
    assert app["startup"]["failures"] == [] and app["startup"]["launch_to_events_ms"]["n"] == 1
    memory = app["memory"]
    assert memory["pages_fetched"] >= 4 and memory["rss_after_1_page_mib"] > 0 and memory["ratio"] > 0
    keys = app["table_keys"]
    for widget in ("line_api", "datatable"):
        assert keys[widget]["pagedown"]["n"] == 5 and keys[widget]["down"]["median"] > 0, widget

    # Nothing left behind on the server.
    with pg_server.admin() as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s", (prefix + "%",)).fetchone()
    assert left == (0,)
