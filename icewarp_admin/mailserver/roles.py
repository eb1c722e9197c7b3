"""The console's three roles; the groups and their permissions are created by migrations."""

ADMINISTRATORS = "Administrators"
HELPDESK = "Helpdesk"
OPERATORS = "Operators"
ROLES = (ADMINISTRATORS, HELPDESK, OPERATORS)
