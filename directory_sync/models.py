"""The Directory Service's own records."""

from __future__ import annotations

from django.db import models

from icewarp_admin.mailserver.models import Domain


class DirectorySettings(models.Model):
    """One domain's Directory Service configuration (IceWarp's <DOMAIN> block in syncad.dat)."""

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="directory_settings")
    active = models.BooleanField(
        "Synchronize users and groups with directory service",
        default=False,
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "directory settings"
        permissions = [
            ("run_sync", "Run Synchronize Now"),
            ("test_connection", "Run Test connection"),
        ]

    def __str__(self) -> str:
        return f"Directory Service of {self.domain}"
