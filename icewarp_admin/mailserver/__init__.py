"""The mail server this console manages: domains, accounts, aliases, groups, templates, global variables."""
