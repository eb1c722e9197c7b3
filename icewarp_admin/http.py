"""Request type of views behind django-htmx's middleware (as django-htmx documents for type checking)."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
