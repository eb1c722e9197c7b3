"""Choices of the Directory Service settings, shared by the models and the server profiles."""

from django.db import models


class ServerType(models.TextChoices):
    ACTIVE_DIRECTORY = "ad", "Active Directory"
    GENERIC = "generic", "Generic LDAP"


class LoginSource(models.TextChoices):
    """What goes after "host;" in u_authmodevalue: the login the directory binds with."""

    USER_PRINCIPAL_NAME = "upn", "userPrincipalName"
    SAM_ACCOUNT_NAME = "samaccountname", "sAMAccountName"
    DN = "dn", "DN"


class UsernameSource(models.TextChoices):
    """Where the local username comes from (a custom attribute, when set, overrides this)."""

    PRIMARY_ALIAS = "alias", "Primary alias of the directory account"
    LOGIN = "login", "Login of the directory account"
    CN = "cn", "CN of the directory account"


class SsoMatching(models.IntegerChoices):
    USERNAME = 0, "Match with username"
    ALIAS = 1, "Match with alias"
    AUTH_VALUE = 2, "Match with the user's directory connection string"
