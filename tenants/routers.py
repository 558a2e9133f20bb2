"""Send migrations to the `migrator` alias (the table owner) when it is configured."""

from typing import Any

from django.conf import settings


class MigratorRouter:
    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        if "migrator" in settings.DATABASES:
            return db == "migrator"
        return db == "default"
