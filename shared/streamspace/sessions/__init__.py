"""Sessions: the /api/v1/sessions operations (`service`), the session index (`index`) and the
live-updates streams (`live`)."""
