"""The models and the migrations agree: `makemigrations --check` finds nothing to
write, so a model change without its migration fails the suite, not a deploy."""

from io import StringIO

import pytest
from django.core.management import call_command


# It reads the applied migrations of each database to check their history.
@pytest.mark.django_db(databases="__all__")
def test_no_model_change_lacks_a_migration() -> None:
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    assert out.getvalue().strip() == "No changes detected"
