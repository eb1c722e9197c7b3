"""Writes to the mail server's model; views, commands and the sync call these, never the ORM directly."""
