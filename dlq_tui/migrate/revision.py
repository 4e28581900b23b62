"""Glue between alembic revision files and the step machinery."""

from __future__ import annotations

import logging
from typing import Any

from dlq_tui.migrate.steps import StepEvent, Steps

log = logging.getLogger("dlq_tui.migrate")

STEPS_ATTRIBUTE = "dlq_tui_steps"


def _log_event(event: StepEvent) -> None:
    if event.status != "running":
        log.info("%d %s %s %s", event.number, event.name, event.status, event.detail)


def steps_for(context: Any) -> Steps:
    """The runner's Steps (reporting to the caller), or a logging one when alembic is used directly."""
    attributes = context.config.attributes if context.config is not None else {}
    steps = attributes.get(STEPS_ATTRIBUTE)
    if steps is None:
        steps = Steps(conn=context.connection, report=_log_event)
        attributes[STEPS_ATTRIBUTE] = steps
    return steps
