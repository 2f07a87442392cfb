-- 0001: the shared address pool.
--
-- One row per address of the pool (zgate-api inserts the pool's rows at
-- start, ON CONFLICT DO NOTHING, so replicas with the same pool agree).
-- An address is leased when client_id is set. The two uniqueness rules
-- that make allocation safe however many zgate-api replicas race are
-- constraints, not application logic:
--   address PRIMARY KEY      one row, so one holder, per address;
--   client_id UNIQUE         one address per client (NULLs do not clash).
CREATE TABLE ipam_addresses (
	address    inet PRIMARY KEY,
	client_id  text UNIQUE,
	relay_id   text,
	created_at timestamptz,
	last_seen  timestamptz,
	CHECK ((client_id IS NULL) = (last_seen IS NULL))
);

-- Free addresses in order: the allocation's "next free from here" scan.
CREATE INDEX ipam_addresses_free ON ipam_addresses (address) WHERE client_id IS NULL;
-- Leases by age: reclaiming the longest-unused one when nothing is free.
CREATE INDEX ipam_addresses_last_seen ON ipam_addresses (last_seen) WHERE client_id IS NOT NULL;
