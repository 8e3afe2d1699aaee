-- 0001_initial: the desired-state schema.
--
-- This file is run verbatim on SQLite and on PostgreSQL, so it sticks to the SQL both accept:
-- TEXT/BIGINT columns, named constraints, and partial unique indexes over an expression. Every
-- JSON document is stored as TEXT rather than JSONB so the two backends hold byte-identical data.

-- One row holding the global revision (bumped by every committed write transaction) and the
-- insertion counter that assigns records.seq. Every write transaction updates this row first,
-- which is also what serializes writers on PostgreSQL (the row lock) and on SQLite (the write lock
-- already taken by BEGIN IMMEDIATE).
CREATE TABLE meta (
    id INTEGER NOT NULL CHECK (id = 1),
    revision BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    CONSTRAINT meta_pkey PRIMARY KEY (id)
);
INSERT INTO meta (id, revision, last_seq) VALUES (1, 0, 0);

-- Every resource, whatever its kind. `refs` keeps the record's reference list exactly as given
-- (order and duplicates included) so it round-trips; record_refs below is the deduplicated index.
CREATE TABLE records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    parent TEXT,
    name TEXT,
    arn TEXT,
    refs TEXT NOT NULL,
    body TEXT NOT NULL,
    seq BIGINT NOT NULL,
    CONSTRAINT records_pkey PRIMARY KEY (kind, id)
);
-- Names are unique per (kind, parent); a NULL parent is folded to '' so that top-level records
-- share one scope (a plain UNIQUE would treat every NULL parent as distinct).
CREATE UNIQUE INDEX records_name_key ON records (kind, (coalesce(parent, '')), name)
    WHERE name IS NOT NULL;
CREATE UNIQUE INDEX records_arn_key ON records (arn) WHERE arn IS NOT NULL;
-- list(kind, None) and list(kind, Some(parent)) both return rows in seq order.
CREATE INDEX records_kind_seq ON records (kind, seq);
CREATE INDEX records_kind_parent_seq ON records (kind, parent, seq);

-- "Which records of kind K point at id X": one row per distinct reference.
CREATE TABLE record_refs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    ref_id TEXT NOT NULL,
    CONSTRAINT record_refs_pkey PRIMARY KEY (kind, id, ref_id)
);
CREATE INDEX record_refs_by_ref ON record_refs (ref_id, kind);

-- Client tokens of mutating API calls: the hash of the request that first used the token and the
-- response it got, so a retry returns the same response and a reuse with other input is refused.
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    token TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    CONSTRAINT idempotency_pkey PRIMARY KEY (scope, token)
);
