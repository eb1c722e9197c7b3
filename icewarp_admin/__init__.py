"""The directory-sync console: IceWarp's Domains & Accounts management with its Directory Service."""

from .celery import app as celery_app

__all__ = ["celery_app"]
