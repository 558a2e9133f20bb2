from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "social.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox network"
