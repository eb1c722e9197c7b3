"""The only package that imports ldap3."""
