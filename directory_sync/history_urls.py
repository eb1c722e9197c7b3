from django.urls import path

from directory_sync.history_views import history_csv, history_list, run_detail, undo_run_removals

app_name = "sync_history"

urlpatterns = [
    path("sync/", history_list, name="list"),
    path("sync/export.csv", history_csv, name="csv"),
    path("sync/runs/<int:run_id>/", run_detail, name="run"),
    path("sync/runs/<int:run_id>/undo-removals", undo_run_removals, name="undo_removals"),
]
