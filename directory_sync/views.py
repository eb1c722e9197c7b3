"""The Directory Service tab."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from icewarp_admin.mailserver.models import Domain


@login_required
@permission_required("mailserver.view_domain", raise_exception=True)
def directory_tab(request: HttpRequest, name: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    return render(request, "directory_sync/directory_tab.html", {"domain": domain, "tab": "directory"})
