-- Dead letters: CloudEvents the broker gave up on (retries exhausted, or a 4xx answer) and handed to the
-- dead-letter broker, whose Trigger delivers them to the dead-letter function. One row per event
-- (source, id), as CloudEvents identify an event: a redelivery of the same dead letter changes nothing;
-- an event that dies again after an admin retried it is reopened with the new failure.
CREATE TABLE dead_letters (
    id              bigserial PRIMARY KEY,
    event_id        text NOT NULL,
    event_source    text NOT NULL,
    event_type      text NOT NULL,
    subject         text,
    event_time      timestamptz,
    -- every context attribute and extension as received (strings), so a retry can resend the event
    attributes      jsonb NOT NULL,
    data            bytea,
    data_content_type text,
    -- Knative's dead-letter extensions: the subscriber's answer (knativeerrorcode), where it was sent
    -- (knativeerrordest) and the start of its response body (knativeerrordata, decoded)
    error_code      integer,
    error_dest      text NOT NULL DEFAULT '',
    error_data      text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'handled', 'retried')),
    times_dead      integer NOT NULL DEFAULT 1,
    first_dead_at   timestamptz NOT NULL DEFAULT now(),
    last_dead_at    timestamptz NOT NULL DEFAULT now(),
    resolved_by     text,
    resolved_at     timestamptz,
    note            text NOT NULL DEFAULT '',
    UNIQUE (event_source, event_id)
);

CREATE INDEX dead_letters_status_last ON dead_letters (status, last_dead_at DESC, id DESC);
CREATE INDEX dead_letters_last ON dead_letters (last_dead_at DESC, id DESC);
