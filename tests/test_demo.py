"""The embedded demo path on SQLite: migrate, seed, serve, an in-process worker."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpdesk.live import free_port

ROOT = Path(__file__).resolve().parent.parent


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))
    }
    for name in ("DATABASE_URL", "MIGRATOR_DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
        env.pop(name, None)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        DJANGO_SETTINGS_MODULE="helpdesk.settings",
        EARSHOT_DEMO="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = demo_env(tmp_path_factory.mktemp("demo"))
    migrated = manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    seeded = manage(env, "seed_demo")
    assert seeded.returncode == 0, seeded.stderr
    assert "owner: owner@acme-air.example / earshot-demo" in seeded.stdout
    return env


SMOKE = """
from django.test import Client
from tenants.exceptions import TenantContextMissing
from tenants.models import Brand
client = Client()
assert client.login(email="owner@acme-air.example", password="earshot-demo")
page = client.get("/t/acme-air/")
print("status", page.status_code, "Acme Air" in page.content.decode())
print("outsider", Client().get("/t/acme-air/").status_code)
try:
    Brand.objects.count()
except TenantContextMissing:
    print("fail-closed")
"""


def test_demo_migrates_seeds_and_renders_the_owners_workspace(
    seeded: dict[str, str],
) -> None:
    result = manage(seeded, "shell", "--no-imports", "-c", SMOKE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == [
        "status 200 True",
        "outsider 302",
        "fail-closed",
    ]


WORKER = """
import time
from django.db import transaction
from helpdesk.management.commands.serve import start_embedded_worker
from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User
from tenants.services import invite_member
worker = start_embedded_worker()
tenant = Tenant.objects.get(slug="acme-air")
owner = User.objects.get(email="owner@acme-air.example")
with tenant_context(tenant):
    membership = Membership.objects.get(user=owner)
    membership.tenant = tenant
    invite_member(membership, email="new@acme-air.example", role="agent")
time.sleep(3)
worker.stop(in_sighandler=False)
"""


def test_demo_runs_tasks_on_a_real_in_process_worker(seeded: dict[str, str]) -> None:
    result = manage(seeded, "shell", "--no-imports", "-c", WORKER)
    assert result.returncode == 0, result.stderr
    # The console mailer printed the email from the worker thread, not eagerly.
    assert (
        "Subject: Olivia (Acme Air) invited you to Acme Air on Earshot" in result.stdout
    )
    assert "Task tenants.send_invitation_email" in result.stderr


def test_serve_answers_http_on_the_chosen_port(
    seeded: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=seeded,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline, body = time.monotonic() + 30, b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/", timeout=2
                ) as r:
                    body = r.read()
                break
            except OSError:
                time.sleep(0.2)
        assert b"helpdesk for customer care on social media" in body
        css = f"http://127.0.0.1:{port}/static/frontend/css/app.css"
        with urllib.request.urlopen(css, timeout=5) as r:
            assert r.status == 200
            assert b".topbar" in r.read()
        # Beat runs in the process too: the sweeps that recover lost work (the
        # replies' outbox first, every 10 s) are sent to the in-process worker.
        deadline = time.monotonic() + 20
        while b"succeeded" not in _sweep_lines(log) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert b"Sending due task sweep-outboxes" in log.read_bytes()
        assert b"succeeded" in _sweep_lines(log)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _sweep_lines(log: Path) -> bytes:
    return b"\n".join(
        line
        for line in log.read_bytes().splitlines()
        if b"Task helpdesk.sweep_outboxes" in line
    )
