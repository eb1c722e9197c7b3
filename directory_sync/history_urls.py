from django.urls import path

from directory_sync.history_views import history_csv, history_list, run_detail

app_name = "sync_history"

urlpatterns = [
    path("sync/", history_list, name="list"),
    path("sync/export.csv", history_csv, name="csv"),
    path("sync/runs/<int:run_id>/", run_detail, name="run"),
]
