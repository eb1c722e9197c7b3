from django.urls import path

from directory_sync import alert_views, explain_views, views

app_name = "directory_sync"

urlpatterns = [
    path("domains/<str:name>/directory/", views.directory_tab, name="directory_tab"),
    path("domains/<str:name>/directory/defaults/", views.server_type_defaults, name="server_type_defaults"),
    path("domains/<str:name>/directory/test/", views.test_connection, name="test_connection"),
    path("domains/<str:name>/directory/test-unsaved/", views.test_unsaved_settings, name="test_unsaved"),
    path(
        "domains/<str:name>/directory/checks/<int:check_id>/", views.connection_check, name="connection_check"
    ),
    path("domains/<str:name>/directory/keytabs/", views.keytab_upload, name="keytab_upload"),
    path(
        "domains/<str:name>/directory/keytabs/<int:keytab_id>/delete/",
        views.keytab_delete,
        name="keytab_delete",
    ),
    path("domains/<str:name>/directory/history/", views.settings_history, name="settings_history"),
    path("domains/<str:name>/directory/sync/", views.synchronize_now, name="synchronize_now"),
    path("domains/<str:name>/directory/runs/<int:run_id>/", views.run_status, name="run_status"),
    path("domains/<str:name>/directory/explain/", explain_views.explain, name="explain"),
    path("domains/<str:name>/directory/explain/sync/", explain_views.synchronize_one, name="sync_one"),
    path("sync/runs/<int:run_id>/withheld/", views.resolve_withheld_removals, name="resolve_withheld"),
    path("system/alerts/", alert_views.alerts_page, name="alerts"),
    path("system/alerts/test/", alert_views.send_test, name="alerts_test"),
    path("domains/<str:name>/directory/alerts/", alert_views.domain_alerts, name="domain_alerts"),
    path(
        "domains/<str:name>/directory/alerts/test/", alert_views.domain_send_test, name="domain_alerts_test"
    ),
]
