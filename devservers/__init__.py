"""Private, loopback-only real servers (OpenLDAP slapd, Redis) for tests, benchmarks and the demo."""
