from django.urls import path

from directory_sync.conflict_views import conflict_list, resolve_conflict

app_name = "sync_conflicts"

urlpatterns = [
    path("sync/conflicts/", conflict_list, name="list"),
    path("sync/conflicts/<int:conflict_id>/resolve/", resolve_conflict, name="resolve"),
]
