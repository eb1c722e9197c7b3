from django.apps import AppConfig


class MailserverConfig(AppConfig):
    name = "icewarp_admin.mailserver"
    label = "mailserver"
    verbose_name = "Domains & Accounts"
