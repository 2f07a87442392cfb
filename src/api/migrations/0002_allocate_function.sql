-- 0002: the allocation as one function, so that it costs zgate-api one
-- round trip to the database instead of four (BEGIN, look-up, claim,
-- COMMIT). zgate-api calls it as a prepared statement in autocommit: the
-- call is its own transaction, and a failure (unique violation,
-- serialization failure, deadlock: another replica won a race) rolls all
-- of it back, so zgate-api simply calls it again.
--
-- The safety rules stay the table's constraints (0001): PRIMARY KEY on
-- address, UNIQUE on client_id. The steps are those zgate-api ran one by
-- one before, each a statement with its own snapshot (READ COMMITTED):
--   existing   the client's lease, refreshed, relay updated;
--   requested  p_requested (NULL: none, or outside the pool) if free or
--              expired (unused for p_ttl seconds);
--   new        the first free address from p_start up to p_last, then
--              from p_first up to just before p_start (FOR UPDATE SKIP
--              LOCKED: concurrent allocations pass each other by);
--   reclaimed  the longest-unused expired lease in p_first..p_last.
-- Returns one row (how, then the lease's columns as zgate-api reads them)
-- or no row when the pool is exhausted.
--
-- CREATE OR REPLACE: running this file again changes nothing.
CREATE OR REPLACE FUNCTION zgate_ipam_allocate(
	p_client text, p_relay text, p_requested inet,
	p_start inet, p_first inet, p_last inet, p_ttl bigint)
RETURNS TABLE (how text, l_client text, l_relay text, l_address text,
	       l_created bigint, l_last_seen bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	expired timestamptz := now() - make_interval(secs => p_ttl);
BEGIN
	UPDATE ipam_addresses a SET relay_id = nullif(p_relay, ''), last_seen = now()
	 WHERE a.client_id = p_client
	 RETURNING 'existing', a.client_id, coalesce(a.relay_id, ''), host(a.address),
		   extract(epoch FROM a.created_at)::bigint, extract(epoch FROM a.last_seen)::bigint
	 INTO how, l_client, l_relay, l_address, l_created, l_last_seen;
	IF FOUND THEN
		RETURN NEXT;
		RETURN;
	END IF;

	IF p_requested IS NOT NULL THEN
		UPDATE ipam_addresses a SET client_id = p_client, relay_id = nullif(p_relay, ''),
			created_at = now(), last_seen = now()
		 WHERE a.address = p_requested AND (a.client_id IS NULL OR a.last_seen < expired)
		 RETURNING 'requested', a.client_id, coalesce(a.relay_id, ''), host(a.address),
			   extract(epoch FROM a.created_at)::bigint,
			   extract(epoch FROM a.last_seen)::bigint
		 INTO how, l_client, l_relay, l_address, l_created, l_last_seen;
		IF FOUND THEN
			RETURN NEXT;
			RETURN;
		END IF;
	END IF;

	UPDATE ipam_addresses a SET client_id = p_client, relay_id = nullif(p_relay, ''),
		created_at = now(), last_seen = now()
	 WHERE a.address = (SELECT f.address FROM ipam_addresses f
			     WHERE f.client_id IS NULL AND f.address >= p_start AND f.address <= p_last
			     ORDER BY f.address LIMIT 1 FOR UPDATE SKIP LOCKED)
	 RETURNING 'new', a.client_id, coalesce(a.relay_id, ''), host(a.address),
		   extract(epoch FROM a.created_at)::bigint, extract(epoch FROM a.last_seen)::bigint
	 INTO how, l_client, l_relay, l_address, l_created, l_last_seen;
	IF FOUND THEN
		RETURN NEXT;
		RETURN;
	END IF;

	IF p_start > p_first THEN
		UPDATE ipam_addresses a SET client_id = p_client, relay_id = nullif(p_relay, ''),
			created_at = now(), last_seen = now()
		 WHERE a.address = (SELECT f.address FROM ipam_addresses f
				     WHERE f.client_id IS NULL AND f.address >= p_first
				       AND f.address < p_start
				     ORDER BY f.address LIMIT 1 FOR UPDATE SKIP LOCKED)
		 RETURNING 'new', a.client_id, coalesce(a.relay_id, ''), host(a.address),
			   extract(epoch FROM a.created_at)::bigint,
			   extract(epoch FROM a.last_seen)::bigint
		 INTO how, l_client, l_relay, l_address, l_created, l_last_seen;
		IF FOUND THEN
			RETURN NEXT;
			RETURN;
		END IF;
	END IF;

	UPDATE ipam_addresses a SET client_id = p_client, relay_id = nullif(p_relay, ''),
		created_at = now(), last_seen = now()
	 WHERE a.address = (SELECT f.address FROM ipam_addresses f
			     WHERE f.client_id IS NOT NULL AND f.last_seen < expired
			       AND f.address >= p_first AND f.address <= p_last
			     ORDER BY f.last_seen LIMIT 1 FOR UPDATE SKIP LOCKED)
	 RETURNING 'reclaimed', a.client_id, coalesce(a.relay_id, ''), host(a.address),
		   extract(epoch FROM a.created_at)::bigint, extract(epoch FROM a.last_seen)::bigint
	 INTO how, l_client, l_relay, l_address, l_created, l_last_seen;
	IF FOUND THEN
		RETURN NEXT;
	END IF;
	RETURN;
END
$$;
