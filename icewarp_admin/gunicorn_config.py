"""Gunicorn's settings in the container (`gunicorn --config python:icewarp_admin.gunicorn_config`): its own
lines, errors and the access log, in the format LOG_FORMAT names, like the console's."""

import os

from icewarp_admin.logging import gunicorn_log_config

logconfig_dict = gunicorn_log_config(log_format=os.environ.get("LOG_FORMAT", "text"))
