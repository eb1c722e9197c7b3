from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from icewarp_admin import health, metrics
from icewarp_admin.mailserver import lockout_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="mailserver:domain_list", permanent=False)),
    # Browsers and crawlers ask for /favicon.ico whatever the page links to.
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("system/sign-in-lockouts/", lockout_views.sign_in_lockouts, name="sign_in_lockouts"),
    path("me/", include("icewarp_admin.selfservice.urls")),
    path("", include("icewarp_admin.mailserver.urls")),
    path("", include("directory_sync.urls")),
    path("", include("directory_sync.history_urls")),
    path("", include("directory_sync.conflict_urls")),
]
