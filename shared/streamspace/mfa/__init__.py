"""Two-factor login (TOTP) for local accounts."""
