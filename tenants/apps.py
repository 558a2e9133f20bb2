from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Workspaces"

    def ready(self) -> None:
        # Registers the system checks (RLS role check); importing is the hook.
        from tenants import api_schema, checks  # noqa: F401
