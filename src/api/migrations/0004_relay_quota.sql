-- 0004: a quota of leases per relay (zgate-api's max_leases_per_relay),
-- so that one relay (a bug, or a compromised relay certificate) cannot
-- take the whole shared pool. The function gains a last parameter,
-- p_max_per_relay (0: no quota); the steps are 0003's, with the quota
-- checked before a new address is given (a client's existing lease is
-- always returned: a relay taking over another's clients keeps them).
-- Counted: the relay's leases that are not expired (an expired lease is
-- anyone's to reclaim). Over the quota the function returns one row with
-- how = 'over_quota', l_created = the number held, l_address NULL.
--
-- The 7-parameter function of 0002/0003 stays, as a wrapper without a
-- quota, so that replicas not yet upgraded keep working during a rolling
-- upgrade. The index makes counting one relay's leases cheap.
-- CREATE OR REPLACE and IF NOT EXISTS: running this again changes nothing.
CREATE INDEX IF NOT EXISTS ipam_addresses_relay ON ipam_addresses (relay_id)
	WHERE client_id IS NOT NULL;

CREATE OR REPLACE FUNCTION zgate_ipam_allocate(
	p_client text, p_relay text, p_requested inet,
	p_start inet, p_first inet, p_last inet, p_ttl bigint, p_max_per_relay integer)
RETURNS TABLE (how text, l_client text, l_relay text, l_address text,
	       l_created bigint, l_last_seen bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	expired timestamptz := now() - make_interval(secs => p_ttl);
	held bigint;
BEGIN
	UPDATE ipam_addresses a SET relay_id = nullif(p_relay, ''), last_seen = now()
	 WHERE a.client_id = p_client AND a.address >= p_first AND a.address <= p_last
	 RETURNING 'existing', a.client_id, coalesce(a.relay_id, ''), host(a.address),
		   extract(epoch FROM a.created_at)::bigint, extract(epoch FROM a.last_seen)::bigint
	 INTO how, l_client, l_relay, l_address, l_created, l_last_seen;
	IF FOUND THEN
		RETURN NEXT;
		RETURN;
	END IF;

	-- A lease outside p_first..p_last (the pool was made smaller or moved
	-- since it was given) is freed: the client gets an address of the
	-- current pool below. In this transaction, so a failure keeps it.
	UPDATE ipam_addresses a SET client_id = NULL, relay_id = NULL, created_at = NULL,
		last_seen = NULL
	 WHERE a.client_id = p_client;

	-- The relay's quota, before any new address is given. The advisory
	-- lock (until the end of this transaction) serialises one relay's new
	-- allocations, so that two racing ones cannot both see quota - 1.
	IF p_max_per_relay > 0 AND p_relay <> '' THEN
		PERFORM pg_advisory_xact_lock(2053534817, hashtext(p_relay)); -- "zgta", the relay
		SELECT count(*) INTO held FROM ipam_addresses a
		 WHERE a.relay_id = p_relay AND a.client_id IS NOT NULL AND a.last_seen >= expired;
		IF held >= p_max_per_relay THEN
			how := 'over_quota';
			l_client := p_client;
			l_relay := p_relay;
			l_address := NULL;
			l_created := held;
			l_last_seen := NULL;
			RETURN NEXT;
			RETURN;
		END IF;
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

CREATE OR REPLACE FUNCTION zgate_ipam_allocate(
	p_client text, p_relay text, p_requested inet,
	p_start inet, p_first inet, p_last inet, p_ttl bigint)
RETURNS TABLE (how text, l_client text, l_relay text, l_address text,
	       l_created bigint, l_last_seen bigint)
LANGUAGE sql VOLATILE AS $$
	SELECT * FROM zgate_ipam_allocate(p_client, p_relay, p_requested, p_start, p_first,
					  p_last, p_ttl, 0)
$$;
