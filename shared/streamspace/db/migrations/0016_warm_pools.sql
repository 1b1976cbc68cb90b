-- Warm pools (issue 18): per Template, how many launches took a warm desktop (claims), how many
-- found none that fit (misses: a pooled template, a launch that could have used one), and how
-- many warm desktops were recycled (too old, or their image could not be pulled). Counters only:
-- the pool itself lives on the cluster (the Deployment warm-<template>).
CREATE TABLE warm_pool_stats (
    namespace  text        NOT NULL,
    template   text        NOT NULL,
    claims     bigint      NOT NULL DEFAULT 0 CHECK (claims >= 0),
    misses     bigint      NOT NULL DEFAULT 0 CHECK (misses >= 0),
    recycles   bigint      NOT NULL DEFAULT 0 CHECK (recycles >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, template)
);
