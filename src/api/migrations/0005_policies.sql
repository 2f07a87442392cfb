-- 0005: the relays' access policy, kept as immutable numbered versions of
-- the policy YAML (src/relay/policy.h), and the history of which version
-- was put in force by whom. Nothing is edited in place: a change is a new
-- version, so the two tables are the audit trail.
--
-- policy_versions.sha256 (hex of the document's bytes) is UNIQUE: the same
-- document uploaded twice, also by two replicas at once, is one version.
-- The active policy is the policy_id of the newest activation (highest id).
--
-- An activation is one call of zgate_policy_activate: it takes a
-- transaction-level advisory lock, so activations (from any replica) run
-- one after another, and each statement of the function (VOLATILE, READ
-- COMMITTED) sees the activation committed by the one before: two admins
-- racing with the same expected_active get one 200 and one 409.
--
-- IF NOT EXISTS and CREATE OR REPLACE: running this file again changes
-- nothing.
CREATE TABLE IF NOT EXISTS policy_versions (
	id bigserial PRIMARY KEY,
	document text NOT NULL,
	sha256 text NOT NULL,
	size integer NOT NULL,
	comment text NOT NULL DEFAULT '',
	created timestamptz NOT NULL DEFAULT now(),
	created_by text NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS policy_versions_sha256 ON policy_versions (sha256);

CREATE TABLE IF NOT EXISTS policy_activations (
	id bigserial PRIMARY KEY,
	policy_id bigint NOT NULL REFERENCES policy_versions (id),
	at timestamptz NOT NULL DEFAULT now(),
	by text NOT NULL
);

-- Puts version p_id in force for p_by. With p_check, only when the active
-- version is p_expected (NULL: none is). Returns one row: status
-- 'unknown' (no version p_id), 'conflict' (the active one is another:
-- active), 'already' (p_id is active: no row added) or 'activated'
-- (active: the version in force before, NULL when none).
CREATE OR REPLACE FUNCTION zgate_policy_activate(
	p_id bigint, p_check boolean, p_expected bigint, p_by text)
RETURNS TABLE (status text, active bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	cur bigint;
BEGIN
	PERFORM 1 FROM policy_versions v WHERE v.id = p_id;
	IF NOT FOUND THEN
		status := 'unknown';
		active := NULL;
		RETURN NEXT;
		RETURN;
	END IF;
	PERFORM pg_advisory_xact_lock(2053599329, 1); -- "zgpa": policy activations
	SELECT a.policy_id INTO cur FROM policy_activations a ORDER BY a.id DESC LIMIT 1;
	active := cur;
	IF p_check AND cur IS DISTINCT FROM p_expected THEN
		status := 'conflict';
	ELSIF cur IS NOT DISTINCT FROM p_id THEN
		status := 'already';
	ELSE
		INSERT INTO policy_activations (policy_id, by) VALUES (p_id, p_by);
		status := 'activated';
	END IF;
	RETURN NEXT;
	RETURN;
END
$$;
