"""Pure domain logic: quantities, durations, names, Templates and Sessions.

Nothing here performs I/O or imports the kubernetes client, so any function can import it
without paying for it at cold start.
"""
