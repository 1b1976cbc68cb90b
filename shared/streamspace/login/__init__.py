"""Password login (`service`): above the second factor, SSO policy and desktop grants it consults."""
