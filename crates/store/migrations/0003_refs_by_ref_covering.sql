-- 0003_refs_by_ref_covering: "which records of kind K point at X" without scanning kind K.
--
-- Like 0001 this runs verbatim on SQLite and PostgreSQL. The index 0001 made on
-- record_refs (ref_id, kind) did not hold `id`, so SQLite's planner (which has no statistics)
-- preferred to walk every record of the kind in `seq` order and probe record_refs for each: 33 ms
-- per CreateRule at 17,000 rules, and every CreateListener and CreateRule asks it twice. With `id`
-- in the index the look-up is covered and Tx::list_referencing drives from it (0.4 ms there).
DROP INDEX record_refs_by_ref;
CREATE INDEX record_refs_by_ref ON record_refs (ref_id, kind, id);
