-- 0003: an existing lease whose address is no longer in the pool is not
-- handed out again. 0002 returned a client's lease whatever its address,
-- so after the pool was made smaller or moved (zgate-api restarted with
-- another --pool; rows of the former pool stay in the table), a client
-- kept an address that relays no longer route and that the new pool's
-- checks never see. Now "existing" is only a lease in p_first..p_last; a
-- lease elsewhere is freed in the same transaction and the client gets an
-- address of the current pool (requested, new or reclaimed, 201), or none
-- (pool exhausted) — its old address is not usable either way.
--
-- The other steps are 0002's, unchanged. CREATE OR REPLACE with 0002's
-- signature: running this file again, or over 0002, changes nothing else.
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
