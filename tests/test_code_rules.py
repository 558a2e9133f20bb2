"""Static rules over app code: the unscoped allowlist (tenancy.md 19) and layering."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("helpdesk", "tenants", "social", "frontend")
RISKY = {
    "unscoped": re.compile(r"\.unscoped\("),
    "base_manager": re.compile(r"\b_base_manager\b"),
    "cursor": re.compile(r"\.cursor\("),
    "raw": re.compile(r"\.raw\("),
}


def app_modules() -> list[Path]:
    return sorted(
        path
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    )


def allowlist() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "tests" / "unscoped_allowlist.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            module, reason = line.split(":", 1)
            entries[module.strip()] = reason.strip()
    return entries


def test_unscoped_usage_allowlist() -> None:
    allowed = allowlist()
    offenders, used = [], set()
    for path in app_modules():
        relative = str(path.relative_to(ROOT))
        text = path.read_text()
        hits = [name for name, pattern in RISKY.items() if pattern.search(text)]
        if not relative.startswith("tenants/") and re.search(
            r"\bUser\.objects\b", text
        ):
            hits.append("User.objects")
        if hits and relative not in allowed:
            offenders.append(f"{relative}: {', '.join(hits)}")
        if hits:
            used.add(relative)
    assert offenders == []
    assert set(allowed) - used == set(), "stale allowlist entries"
    assert all(len(reason) > 20 for reason in allowed.values())


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_dependencies_run_one_way() -> None:
    for path in app_modules():
        relative = path.relative_to(ROOT)
        imported = _imports(path) & set(APPS)
        assert "frontend" not in imported or relative.parts[0] == "frontend", relative
        if relative.parts[0] == "tenants":
            assert imported <= {"tenants"}, relative
