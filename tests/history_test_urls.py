"""The console's URLs plus the sync history's, until icewarp_admin/urls.py includes them itself."""

from django.urls import include, path

from icewarp_admin.urls import urlpatterns as console_patterns

history = [path("", include("directory_sync.history_urls"))]
included = any(getattr(pattern, "namespace", None) == "sync_history" for pattern in console_patterns)
urlpatterns = [*console_patterns] if included else [*console_patterns, *history]
