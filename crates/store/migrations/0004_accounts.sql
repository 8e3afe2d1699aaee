-- 0004_accounts: every record belongs to one account, or to none.
--
-- Like 0001 this runs verbatim on SQLite and PostgreSQL. `account` is the 12-digit ID of the
-- account that owns the record; '' marks a record of no account (the organization, its member
-- accounts, the session-token key) that every account's transactions see. Records written before
-- this migration start as '' and are given to the management account when the server starts
-- (`Store::adopt_unowned`), so an upgrade keeps every resource where it was.
--
-- Names are now unique per account: two accounts may each have a service called `billing`. The
-- index leads with the old columns so a lookup by (kind, parent, name) still uses it.
ALTER TABLE records ADD COLUMN account TEXT NOT NULL DEFAULT '';
DROP INDEX records_name_key;
CREATE UNIQUE INDEX records_name_key ON records (kind, (coalesce(parent, '')), name, account)
    WHERE name IS NOT NULL;
CREATE INDEX records_account_kind_seq ON records (account, kind, seq);
