from django.apps import AppConfig


class DirectorySyncConfig(AppConfig):
    name = "directory_sync"
    verbose_name = "Directory Service"

    def ready(self) -> None:
        from directory_sync.lookups import register

        register()
