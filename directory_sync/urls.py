from django.urls import path

from directory_sync import views

app_name = "directory_sync"

urlpatterns = [
    path("domains/<str:name>/directory/", views.directory_tab, name="directory_tab"),
]
