"""The settings helpers fail loudly on malformed values."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from helpdesk.settings import env_bool, env_database, env_int, env_list, env_secret


def test_env_bool_accepts_clear_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in (("1", True), ("yes", True), ("off", False), ("", False)):
        monkeypatch.setenv("FLAG", raw)
        assert env_bool("FLAG", default=not expected) is expected


def test_env_bool_rejects_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(
        ImproperlyConfigured, match="FLAG must be true or false, got 'maybe'"
    ):
        env_bool("FLAG", default=False)


def test_env_int_rejects_text_and_values_below_the_minimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORTISH", "eighty")
    with pytest.raises(ImproperlyConfigured, match="PORTISH must be an integer"):
        env_int("PORTISH", 1)
    monkeypatch.setenv("PORTISH", "0")
    with pytest.raises(ImproperlyConfigured, match="PORTISH must be at least 1, got 0"):
        env_int("PORTISH", 1, minimum=1)
    monkeypatch.setenv("PORTISH", "8080")
    assert env_int("PORTISH", 1, minimum=1) == 8080


def test_env_list_splits_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTS", " a.example, ,b.example ")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]
    monkeypatch.delenv("HOSTS")
    assert env_list("HOSTS", ["x"]) == ["x"]


def test_env_secret_is_required_and_long_outside_debug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SECRET", raising=False)
    with pytest.raises(
        ImproperlyConfigured, match="SECRET must be set when DEBUG is off"
    ):
        env_secret("SECRET", demo_default="demo", debug=False)
    assert env_secret("SECRET", demo_default="demo", debug=True) == "demo"
    monkeypatch.setenv("SECRET", "short")
    with pytest.raises(ImproperlyConfigured, match="at least 32 characters"):
        env_secret("SECRET", demo_default="demo", debug=False)


def test_env_database_rejects_unknown_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB", "mongodb://nowhere/x")
    with pytest.raises(ImproperlyConfigured, match="DB is not a valid database URL"):
        env_database("DB", "")
    monkeypatch.setenv("DB", "postgresql://app@127.0.0.1:5432/earshot")
    config = env_database("DB", "")
    assert (config["USER"], config["NAME"], config["PORT"]) == ("app", "earshot", 5432)
