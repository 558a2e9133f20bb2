"""Earshot's project package and care core. Exposes the Celery app so tasks bind."""

from helpdesk.celery import app as celery_app

__all__ = ["celery_app"]
