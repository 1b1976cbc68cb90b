"""The reconcile functions' library: Sessions and Templates on the cluster kept in step with their specs.

- `desired`: pure functions (no I/O): the complete set of objects a Session wants, and its status.
- `context`: what a reconcile reads from Postgres (the session index row, the Template as last
  validated, configuration, tombstones of deleted Sessions) and writes back.
- `session`, `template`: the level-triggered reconcilers behind the CloudEvent functions.
- `sweep`: the idle / max-duration sweep; `resync`: the periodic repair of missed events;
  `authcheck`: the ingress forward-auth decision.
"""
