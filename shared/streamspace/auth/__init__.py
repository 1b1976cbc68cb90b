"""Identity: tokens, callers, passwords."""
