from django.urls import path

from icewarp_admin.selfservice import views

app_name = "selfservice"

urlpatterns = [
    path("", views.sign_in_page, name="sign_in"),
    path("account/", views.account_page, name="account"),
    path("password/", views.password_page, name="password"),
    path("sign-out/", views.sign_out_page, name="sign_out"),
]
