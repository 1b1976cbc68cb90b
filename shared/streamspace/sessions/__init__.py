"""Sessions: the /api/v1/sessions operations (`service`), the live-updates streams (`live`), warm
starts (`warm`), over the store, the only code that speaks SQL to the package's tables (`store`: the
session index and connections as the API reads and writes them; `index_store`: as the reconcilers
and the idle sweep do; `starts_store`, `warm_store`)."""
