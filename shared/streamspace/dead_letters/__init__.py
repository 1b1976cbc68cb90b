"""Dead letters: CloudEvents the broker gave up on, kept in Postgres where an operator can read them.

The main broker hands an event it could not deliver (retries exhausted, or a 4xx answer) to the
dead-letter broker `streamspace-dlq`; its one Trigger delivers it to the `dead-letter` function, which
records it here (`service.record`). Admins list them, mark them handled, or send one back to the broker.
"""
