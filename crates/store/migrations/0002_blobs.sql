-- 0002_blobs: a content-addressed blob table (function code for the Lambda host).
--
-- Like 0001 this runs verbatim on SQLite and PostgreSQL. `data` is declared BYTEA, PostgreSQL's
-- binary type; SQLite accepts any declared type and never converts a BLOB value whatever the
-- column's affinity, so both engines store the bytes untouched. `sha256` is the lowercase hex
-- SHA-256 of `data` (the store checks it on insert), so a blob is written once and never changes.
CREATE TABLE blobs (
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL,
    CONSTRAINT blobs_pkey PRIMARY KEY (sha256)
);
