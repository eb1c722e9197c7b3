"""Attributes that may hold a password, a password hash or a key: never shown, stored or mapped."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["SECRET_ATTRIBUTES", "is_secret_attribute"]

# Never shown in Test connection's sample nor copied into personal data, even when the bind can read them.
SECRET_ATTRIBUTES: Final[frozenset[str]] = frozenset(
    name.lower()
    for name in (
        "userPassword",
        "authPassword",
        "unicodePwd",
        "dBCSPwd",
        "ntPwdHistory",
        "lmPwdHistory",
        "pwdHistory",
        "supplementalCredentials",
        "sambaNTPassword",
        "sambaLMPassword",
        "sambaPasswordHistory",
        "krbPrincipalKey",
        "krbExtraData",
        "msDS-ManagedPassword",
        "userPKCS12",
        "ms-Mcs-AdmPwd",
        "unixUserPassword",
        "msSFU30Password",
        "trustAuthIncoming",
        "trustAuthOutgoing",
        "initialAuthIncoming",
        "initialAuthOutgoing",
        "currentValue",
        "priorValue",
        "msFVE-RecoveryPassword",
        "msFVE-KeyPackage",
        "msTPM-OwnerInformation",
        "msPKIDPAPIMasterKeys",
        "msPKIAccountCredentials",
    )
)
# Whatever a name of the kind says, as a second line of defence (LAPS keeps passwords in msLAPS-*).
_SECRET_NAME = re.compile(r"passw(or)?d|pwd|secret|credential|privatekey|^mslaps-", re.IGNORECASE)


def is_secret_attribute(name: str) -> bool:
    """Whether an attribute may hold a password, a password hash or a key (options such as ;binary aside)."""
    base = name.split(";", 1)[0]
    return base.lower() in SECRET_ATTRIBUTES or _SECRET_NAME.search(base) is not None
