"""The sync engine: load → plan → guard → apply. The plan is plain data, computed without writing."""
