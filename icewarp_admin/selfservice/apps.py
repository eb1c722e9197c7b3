from django.apps import AppConfig


class SelfServiceConfig(AppConfig):
    name = "icewarp_admin.selfservice"
    label = "selfservice"
    verbose_name = "Self-service"
