"""Platform settings kept in Postgres and edited through /api/v1/config: the keys, defaults and rules
(`service`) over the `configuration` table (`store`). The process environment is `config.environment()`."""
