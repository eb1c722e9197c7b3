from django.apps import AppConfig


class MailserverConfig(AppConfig):
    name = "icewarp_admin.mailserver"
    label = "mailserver"
    verbose_name = "Domains & Accounts"

    def ready(self) -> None:
        from icewarp_admin.mailserver import checks  # noqa: F401 — registers the system checks
