"""Pure rules of the Directory Service: no database, no network."""
