"""Opening a desktop in the browser: tickets, the session host's cookie, and its checks.

`store` is the only code that speaks SQL to `desktop_tickets` and `desktop_grants`; `access` holds
the rules (who may open what, for how long, which cookie).
"""
