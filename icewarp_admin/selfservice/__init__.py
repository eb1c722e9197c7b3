"""The mail users' self-service pages at /me/: the web client's stand-in (sign in, account, personal data,
password change), on a session of their own."""
