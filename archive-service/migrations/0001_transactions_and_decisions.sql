-- The archive of accepted transactions (as published on `transactions`) and of the
-- detector's decisions (as published on `decisions`). Rows are written once and never
-- updated (fraud_common/archive.py); `record` and `decision` keep the whole message.

CREATE TABLE transactions (
    transaction_id text PRIMARY KEY,
    user_id        text        NOT NULL,
    event_time     timestamptz NOT NULL,
    received_at    timestamptz NOT NULL,
    amount         numeric     NOT NULL,
    currency       char(3)     NOT NULL,
    amount_usd     numeric,
    fx_rate        numeric,
    fx_rate_date   text,
    location       text        NOT NULL,
    latitude       double precision,
    longitude      double precision,
    record         jsonb       NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX transactions_user_event_time ON transactions (user_id, event_time);

CREATE TABLE decisions (
    transaction_id text PRIMARY KEY,
    user_id        text,
    status         text        NOT NULL,
    risk_score     smallint,
    rules_version  text,
    decided_at     timestamptz NOT NULL,
    decision       jsonb       NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX decisions_user_decided_at ON decisions (user_id, decided_at);
