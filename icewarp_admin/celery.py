"""The Celery application; tasks live in each app's tasks.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "icewarp_admin.settings")

# DjangoTask adds delay_on_commit: a task is queued only once the row it reads is committed.
app = Celery("icewarp_admin", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
