"""The Directory Service: one-way sync of a domain's accounts and groups from LDAP / Active Directory."""
