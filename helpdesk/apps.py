from django.apps import AppConfig


class HelpdeskConfig(AppConfig):
    name = "helpdesk"
    verbose_name = "Helpdesk"

    def ready(self) -> None:
        from helpdesk.dbtuning import widen_statement_cache
        from helpdesk.metrics import connect_worker_signals, initialise_series
        from helpdesk.observability.logs import connect_task_signals

        widen_statement_cache()
        connect_task_signals()
        connect_worker_signals()
        initialise_series()
