from django.urls import path

from icewarp_admin.mailserver import views

app_name = "mailserver"

urlpatterns = [
    path("domains/", views.domain_list, name="domain_list"),
    path("domains/<str:name>/", views.domain_detail, name="domain_detail"),
    path("domains/<str:name>/delete/", views.domain_delete, name="domain_delete"),
    path("domains/<str:name>/accounts/", views.account_list, name="account_list"),
    path("domains/<str:name>/accounts/<str:username>/", views.account_detail, name="account_detail"),
    path("domains/<str:name>/accounts/<str:username>/delete/", views.account_delete, name="account_delete"),
    path("domains/<str:name>/groups/", views.group_list, name="group_list"),
    path("domains/<str:name>/groups/<str:alias>/", views.group_detail, name="group_detail"),
    path("domains/<str:name>/groups/<str:alias>/delete/", views.group_delete, name="group_delete"),
    path("templates/", views.template_list, name="template_list"),
    path("templates/new/", views.template_detail, name="template_create"),
    path("templates/<int:pk>/", views.template_detail, name="template_detail"),
    path("templates/<int:pk>/delete/", views.template_delete, name="template_delete"),
    path("system/settings/", views.system_settings, name="system_settings"),
]
