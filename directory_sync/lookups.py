"""`field__anyof=[...]`: the values as one array parameter on PostgreSQL (`= ANY(%s)`), IN elsewhere.

A sync looks thousands of keys up at a time; with IN, the driver formats one placeholder per value into the
statement (a third of a run's load phase went there), with ANY it sends one array.
"""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, Field, IntegerField, TextField
from django.db.models.lookups import In


class AnyOf(In):
    lookup_name = "anyof"

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [value for value in self.rhs if value is not None]
        return f"{lhs} = ANY(%s)", [*lhs_params, values]


def register() -> None:
    for field in (CharField, TextField, IntegerField):
        field.register_lookup(AnyOf)


__all__ = ["AnyOf", "Field", "register"]
