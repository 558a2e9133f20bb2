"""Fixtures of the fault suite: a workspace with a connected Sandbox account, an API
channel and a token (workspace.py), and the stack (stack.py) serving it.

The test's data is committed (transactional tests), so the stack's processes see
it. Logs are kept in tests/faults/artifacts/logs/<test>/; their tails are printed
when a test fails.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from tests.faults.stack import ARTIFACTS, Stack, clean_artifacts, publishing_to
from tests.faults.workspace import Workspace, make_faults_workspace

# Thousands of requests: their per-request log lines would drown the tables.
logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"report_{call.when}", report)
    return report


StartStack = Callable[..., tuple[Stack, Workspace]]


@pytest.fixture
def start_stack(
    request: pytest.FixtureRequest, tmp_path: Path, transactional_db: None
) -> Iterator[StartStack]:
    """`start_stack(broker, **options)`: the workspace and its running stack."""
    started: list[Stack] = []
    with ExitStack() as exits:

        def start(broker: str, **options: float) -> tuple[Stack, Workspace]:
            name = request.node.name.replace("/", "_")
            log_dir = ARTIFACTS / "logs" / name
            clean_artifacts(log_dir)
            stack = Stack(broker, log_dir, tmp_path, **options)  # type: ignore[arg-type]
            started.append(stack)
            stack.start_services()
            apps = {
                **settings.SOCIAL_APPS,
                "sandbox": {
                    **settings.SOCIAL_APPS["sandbox"],
                    "base_url": f"{stack.url}/sandbox",
                },
            }
            exits.enter_context(override_settings(SITE_URL=stack.url, SOCIAL_APPS=apps))
            exits.enter_context(publishing_to(stack.broker_url))
            workspace = make_faults_workspace()
            stack.start_processes()
            return stack, workspace

        try:
            yield start
        finally:
            report = getattr(request.node, "report_call", None)
            for stack in started:
                if report is None or report.failed:
                    print(f"\n=== logs of {request.node.name} ===\n{stack.tails()}")  # noqa: T201
                stack.stop()
            # A PostgreSQL restart leaves this process's connections broken.
            connections.close_all()
