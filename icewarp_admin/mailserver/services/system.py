"""Global API variables (System → Settings)."""

from __future__ import annotations

from icewarp_admin.mailserver.models import SystemVariable
from icewarp_admin.mailserver.system_variables import find_variable


def set_system_variable(*, name: str, value: str | int | bool) -> int:
    """Validate and store a global variable; returns the value. Raises LookupError or ValidationError."""
    spec = find_variable(name)
    parsed = spec.parse(value)
    SystemVariable.objects.update_or_create(name=spec.name, defaults={"value": str(parsed)})
    return parsed


def reset_system_variable(*, name: str) -> int:
    """Forget a stored value so the variable takes its default again; returns the default."""
    spec = find_variable(name)
    SystemVariable.objects.filter(name=spec.name).delete()
    return spec.default
