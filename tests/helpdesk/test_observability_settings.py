"""The observability settings fail loudly on malformed values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from helpdesk.settings import env_networks

ROOT = Path(__file__).resolve().parents[2]


def test_env_networks_accepts_cidrs_and_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NETS", "10.0.0.0/8, 192.0.2.7 ,::1/128")
    assert env_networks("NETS", []) == ["10.0.0.0/8", "192.0.2.7", "::1/128"]
    monkeypatch.delenv("NETS")
    assert env_networks("NETS", ["127.0.0.0/8"]) == ["127.0.0.0/8"]


def test_env_networks_rejects_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETS", "10.0.0.0/8,intranet")
    with pytest.raises(ImproperlyConfigured, match=r"NETS must list networks \(CIDR\)"):
        env_networks("NETS", [])


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be plain or json, got 'xml'"),
        ("METRICS_TOKEN", "short", "METRICS_TOKEN must be at least 16 characters"),
        ("METRICS_ALLOWED_NETS", "10.0.0.0/33", "METRICS_ALLOWED_NETS must list"),
    ],
)
def test_a_malformed_observability_setting_stops_start_up(
    name: str, value: str, message: str
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": "sqlite:///unused-observability.sqlite3",
        "EARSHOT_DEMO": "1",
        name: value,
    }
    env.pop("MIGRATOR_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", "import helpdesk.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert f"ImproperlyConfigured: {message}" in done.stderr
