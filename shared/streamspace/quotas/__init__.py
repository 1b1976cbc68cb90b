"""Quotas: limits per user and per group (`service`), their rows and the usage sums (`store`);
the rules without I/O are `streamspace.domain.quotas`."""
