"""Writes to the Directory Service's records and files; views and commands call these, not the ORM."""
