"""The read path's SQLite branch (the demo): tag names, contact names, the page
by ids and `?include=` answer the same as on PostgreSQL (tests/sqlite_read_path)."""

from pathlib import Path

from tests.demo_subprocess import run_on_demo_sqlite


def test_the_read_path_answers_on_sqlite(tmp_path: Path) -> None:
    outcome = run_on_demo_sqlite("tests.sqlite_read_path", tmp_path)
    selector = outcome["selector"]
    assert len(selector["ids"]) == 5
    assert selector["tags"] == [["bags", "vip"], ["bags"], [], [], []]
    assert selector["contact_ids"] == [True] * 5
    assert all(name for name in selector["contacts"])
    assert outcome["api_ids"] == selector["ids"]
    assert outcome["api_tags"] == selector["tags"]
    assert outcome["api_contacts"] == selector["contacts"]
    assert outcome["detail_tags"] == ["bags", "vip"]
    assert outcome["detail_messages_equal_thread"] is True
    assert outcome["detail_messages"] > 0
    assert outcome["detail_notes"] == []
