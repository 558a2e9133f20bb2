"""A real web server (helpdesk.web_server, uvicorn workers) serving
`helpdesk.asgi:application` for benchmarks.

tests.settings, the test database as the runtime role, and Celery publishing to the
Redis broker of the live tests (db 14) with no worker unless the benchmark starts
one. Loopback only.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.helpdesk.live import BROKER_URL, ROOT, free_port, web_server_command

# How long the server may take to answer /healthz: a worker imports the whole
# project, and on a loaded 2-core machine four of them took 38.6 s to be ready
# (6.6 s for one). A server that exits meanwhile fails at once.
START_TIMEOUT = float(os.environ.get("EARSHOT_BENCH_START_TIMEOUT", "180"))


@contextmanager
def uvicorn_server(
    log_dir: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Serve the app on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EARSHOT_TEST_EAGER": "0",
        "CELERY_BROKER_URL": BROKER_URL,
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    log = (log_dir / "uvicorn.log").open("w")
    command = web_server_command(port, workers=workers)
    server = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(
                    f"uvicorn exited ({server.returncode}); see {log_dir}/uvicorn.log"
                )
            try:
                httpx.get(f"{base}/healthz", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"uvicorn did not start; see {log_dir}/uvicorn.log")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
