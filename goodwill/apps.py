from django.apps import AppConfig


class GoodwillConfig(AppConfig):
    name = "goodwill"
    verbose_name = "Goodwill gestures"
