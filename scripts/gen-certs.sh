#!/usr/bin/env bash
# gen-certs.sh — make a private PKI for zgate with openssl.
#
#   scripts/gen-certs.sh [-d DIR] [-s SERVER_NAME]... [-c CLIENT_ID]... [-r CLIENT_ID]...
#                        [--api NAME]... [--api-relay RELAY_ID]... [--api-admin NAME]...
#                        [--connector ID]... [--test-set] [--days N] [--crl-days N]
#
# Writes into DIR (default ./pki):
#   ca.crt, ca.key                the CA that signs both sides
#   relay.crt, relay.key          the relay (serverAuth; SAN = every -s name,
#                                 DNS or IP address; default "localhost" and 127.0.0.1)
#   <client>.crt, <client>.key    one per -c (clientAuth; CN = the client ID the
#                                 policy names, 1-63 of A-Z a-z 0-9 . _ -);
#                                 default one client "agent-1"
#   ca.crl                        the CA's CRL (nextUpdate in --crl-days, default 30):
#                                 made when missing, remade after every -r; every
#                                 revocation so far is kept in DIR/ca.db
#   api.crt, api.key              zgate-api's server certificate, only with --api
#                                 (serverAuth; SAN = every --api name). A run with
#                                 --api* options but no -s leaves relay.crt as it is
#                                 and makes no default agent
#   relay-<id>.crt, .key          one per --api-relay: a relay's client certificate
#                                 for zgate-api (clientAuth; CN "relay:<id>", the
#                                 relay's relay_id, 1-63 of A-Z a-z 0-9 . _ -)
#   admin-<name>.crt, .key        one per --api-admin (clientAuth; CN "admin:<name>")
#   connector-<id>.crt, .key      one per --connector: a zgate-connector (CN
#                                 "connector:<id>", 1-63 of A-Z a-z 0-9 . _ -;
#                                 clientAuth to the relay and serverAuth to the
#                                 agents' inner sessions). A run with only
#                                 --connector / --api* options leaves relay.crt
#                                 as it is and makes no default agent
# -r CLIENT_ID revokes DIR/CLIENT_ID.crt (after any -c of this run): give the
# new ca.crl to the relay (tls.crl); a running relay reloads it and closes
# that client's tunnel.
# With --test-set, also the certificates tests need to prove refusals:
#   expired.crt/.key              clientAuth, validity ended yesterday
#   notyet.crt/.key               clientAuth, valid from tomorrow
#   serveronly.crt/.key           serverAuth only (no clientAuth EKU)
#   other-ca.crt/.key, stranger.crt/.key   a client signed by an unrelated CA
#   twocn (CN=agent-2 + CN=agent-1), nocn (no CN), longcn (64 characters),
#   spacecn ("agent 1"), utf8cn (non-ASCII)   identities the relay refuses
#   uri.crt (SAN URI spiffe://zgate.test/agent-uri), twouri.crt (two URIs)
#   revoked.crt                   listed in ca.crl
#   expired.crl                   the same list, nextUpdate yesterday
# Keys are ECDSA P-256, mode 0600. An existing CA in DIR is reused, so new
# clients can be added later. Never use the test set in production.
set -euo pipefail

dir=./pki days=825 crl_days=30 test_set=0
servers=() clients=() revoke=() api_names=() api_relays=() api_admins=() connectors=()
usage() { sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
	case $1 in
	-d) dir=$2; shift 2 ;;
	-s) servers+=("$2"); shift 2 ;;
	-c) clients+=("$2"); shift 2 ;;
	-r) revoke+=("$2"); shift 2 ;;
	--api) api_names+=("$2"); shift 2 ;;
	--api-relay) api_relays+=("$2"); shift 2 ;;
	--api-admin) api_admins+=("$2"); shift 2 ;;
	--connector)
		[[ $# -ge 2 ]] || { echo "gen-certs.sh: --connector needs an ID" >&2; exit 2; }
		connectors+=("$2"); shift 2 ;;
	--crl-days) crl_days=$2; shift 2 ;;
	--days) days=$2; shift 2 ;;
	--test-set) test_set=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "gen-certs.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
# Only -r on an existing PKI: revoke, make nothing new (the relay's
# certificate stays as it is).
only_revoke=0
[[ ${#revoke[@]} -gt 0 && ${#servers[@]} -eq 0 && ${#clients[@]} -eq 0 && $test_set -eq 0 &&
	${#api_names[@]} -eq 0 && ${#api_relays[@]} -eq 0 && ${#api_admins[@]} -eq 0 &&
	${#connectors[@]} -eq 0 && -f $dir/ca.crt ]] && only_revoke=1
# A run that makes zgate-api or connector certificates makes no agent and
# leaves the relay's certificate alone unless -c / -s ask for them.
api_only=0
[[ ${#api_names[@]} -gt 0 || ${#api_relays[@]} -gt 0 || ${#api_admins[@]} -gt 0 ||
	${#connectors[@]} -gt 0 ]] &&
	[[ ${#servers[@]} -eq 0 && $test_set -eq 0 ]] && api_only=1
[[ ${#servers[@]} -gt 0 ]] || servers=(localhost 127.0.0.1)
[[ ${#clients[@]} -gt 0 || $only_revoke -eq 1 || $api_only -eq 1 || ${#api_names[@]} -gt 0 ||
	${#api_relays[@]} -gt 0 || ${#api_admins[@]} -gt 0 || ${#connectors[@]} -gt 0 ]] || clients=(agent-1)
[[ $crl_days =~ ^[1-9][0-9]{0,4}$ ]] || { echo "gen-certs.sh: --crl-days must be 1-99999" >&2; exit 2; }
for c in ${revoke[@]+"${revoke[@]}"} ${api_relays[@]+"${api_relays[@]}"} ${api_admins[@]+"${api_admins[@]}"}; do
	[[ $c =~ ^[A-Za-z0-9._-]{1,63}$ ]] || { echo "gen-certs.sh: client ID '$c' must be 1-63 of A-Z a-z 0-9 . _ -" >&2; exit 2; }
done
for c in ${connectors[@]+"${connectors[@]}"}; do
	[[ $c =~ ^[A-Za-z0-9._-]{1,63}$ ]] ||
		{ echo "gen-certs.sh: connector ID '$c' must be 1-63 of A-Z a-z 0-9 . _ - (the certificate's CN is connector:ID)" >&2; exit 2; }
done
command -v openssl >/dev/null || { echo "gen-certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$dir"
umask 077
cd "$dir"

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME CN EKU SAN CA [START END]: NAME.crt signed by CA.crt/CA.key
# (a CN starting with / is a whole subject: /CN=a/CN=b, /O=x)
sign() {
	local name=$1 cn=$2 eku=$3 san=$4 ca=$5 start=${6:-} end=${7:-} subj
	subj="/CN=$cn"
	[[ $cn == /* ]] && subj=$cn
	newkey "$name.key"
	openssl req -new -utf8 -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=$eku"
		[[ -n $san ]] && echo "subjectAltName=$san"
	} >"$name.ext"
	if [[ -n $start ]]; then
		# An explicit validity window (expired / not yet valid): x509
		# -days cannot go backwards, so sign with `openssl ca` and a
		# throwaway database.
		local db; db=$(mktemp -d)
		: >"$db/index.txt"
		echo 01 >"$db/serial"
		cat >"$db/ca.cnf" <<CNF
[ca]
default_ca = zg
[zg]
database = $db/index.txt
new_certs_dir = $db
serial = $db/serial
default_md = sha256
policy = pol
unique_subject = no
[pol]
commonName = optional
CNF
		openssl ca -batch -notext -config "$db/ca.cnf" -cert "$ca.crt" -keyfile "$ca.key" \
			-in "$name.csr" -out "$name.crt" -startdate "$start" -enddate "$end" \
			-extfile "$name.ext" 2>"$db/err" ||
			{ cat "$db/err" >&2; rm -rf "$db"; echo "gen-certs.sh: cannot sign $name" >&2; exit 1; }
		rm -rf "$db"
	else
		openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial \
			-days "$days" -extfile "$name.ext" -out "$name.crt" 2>/dev/null
	fi
	rm -f "$name.csr" "$name.ext"
}

mkca() {
	local name=$1 cn=$2
	[[ -f $name.crt && -f $name.key ]] && return 0
	newkey "$name.key"
	openssl req -x509 -new -key "$name.key" -subj "/CN=$cn" -days 3650 \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" -out "$name.crt" 2>/dev/null
}

mkca ca "zgate CA"
# sans NAME...: the subjectAltName list (IP: for addresses, DNS: for names)
sans() {
	local n out=""
	for n in "$@"; do
		if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then out+="${out:+,}IP:$n"; else out+="${out:+,}DNS:$n"; fi
	done
	echo "$out"
}
[[ $only_revoke -eq 1 || $api_only -eq 1 ]] || sign relay "${servers[0]}" serverAuth "$(sans "${servers[@]}")" ca
[[ ${#api_names[@]} -eq 0 ]] || sign api "${api_names[0]}" serverAuth "$(sans "${api_names[@]}")" ca
# zgate-api tells relays from admins by the CN's prefix.
for c in ${api_relays[@]+"${api_relays[@]}"}; do sign "relay-$c" "relay:$c" clientAuth "" ca; done
for c in ${api_admins[@]+"${api_admins[@]}"}; do sign "admin-$c" "admin:$c" clientAuth "" ca; done
# A connector is a TLS client of the relay (its outer tunnel) and a TLS
# server of the agents' inner sessions: both EKUs; the relay and the agents
# tell it by the CN's prefix.
for c in ${connectors[@]+"${connectors[@]}"}; do sign "connector-$c" "connector:$c" clientAuth,serverAuth "" ca; done
for c in ${clients[@]+"${clients[@]}"}; do
	[[ $c =~ ^[A-Za-z0-9._-]{1,63}$ ]] || { echo "gen-certs.sh: client ID '$c' must be 1-63 of A-Z a-z 0-9 . _ -" >&2; exit 2; }
	sign "$c" "$c" clientAuth "" ca
done

if [[ $test_set -eq 1 ]]; then
	sign serveronly serveronly serverAuth "" ca
	mkca other-ca "unrelated CA"
	sign stranger stranger clientAuth "" other-ca
	# validity windows relative to today, in openssl's YYYYMMDDHHMMSSZ form
	past1=$(date -u -d '-30 days' +%Y%m%d%H%M%SZ) past2=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
	fut1=$(date -u -d '+1 day' +%Y%m%d%H%M%SZ) fut2=$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)
	sign expired expired clientAuth "" ca "$past1" "$past2"
	sign notyet notyet clientAuth "" ca "$fut1" "$fut2"
	sign twocn "/CN=agent-2/CN=agent-1" clientAuth "" ca
	sign nocn "/O=zgate/OU=agents" clientAuth "" ca
	sign longcn "$(printf 'a%.0s' {1..64})" clientAuth "" ca
	sign spacecn "agent 1" clientAuth "" ca
	sign utf8cn "agént-1" clientAuth "" ca
	sign uri uri-client clientAuth "URI:spiffe://zgate.test/agent-uri" ca
	sign twouri twouri clientAuth "URI:spiffe://zgate.test/a,URI:spiffe://zgate.test/b" ca
	sign revoked revoked clientAuth "" ca
	revoke+=(revoked)
fi

# The CA's database: every revocation of this PKI, so that each new CRL
# lists all of them.
mkdir -p ca.db
[[ -f ca.db/index.txt ]] || : >ca.db/index.txt
[[ -f ca.db/crlnumber ]] || echo 1000 >ca.db/crlnumber
printf '[ca]\ndefault_ca = zg\n[zg]\ndatabase = %s/index.txt\ncrlnumber = %s/crlnumber\ndefault_md = sha256\n' \
	"$PWD/ca.db" "$PWD/ca.db" >ca.db/ca.cnf
zgca() { openssl ca -batch -config ca.db/ca.cnf -cert ca.crt -keyfile ca.key "$@" 2>ca.db/err ||
	{ cat ca.db/err >&2; echo "gen-certs.sh: openssl ca $1 failed" >&2; exit 1; }; }
for c in ${revoke[@]+"${revoke[@]}"}; do
	[[ -f $c.crt ]] || { echo "gen-certs.sh: -r $c: no $c.crt in $PWD" >&2; exit 2; }
	serial=$(openssl x509 -in "$c.crt" -noout -serial | sed 's/^serial=//')
	# already revoked (a second -r, or the test set again): nothing to add
	awk -F'\t' -v s="$serial" '$1 == "R" && toupper($4) == toupper(s) {f = 1} END {exit !f}' ca.db/index.txt ||
		zgca -revoke "$c.crt"
done
if [[ ${#revoke[@]} -gt 0 || ! -f ca.crl ]]; then
	zgca -gencrl -crldays "$crl_days" -out ca.crl.tmp
	mv -f ca.crl.tmp ca.crl # one rename: a relay watching the directory never reads half a CRL
fi
if [[ $test_set -eq 1 ]]; then
	zgca -gencrl -crl_lastupdate "$(date -u -d '-30 days' +%Y%m%d%H%M%SZ)" \
		-crl_nextupdate "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)" -out expired.crl
fi
chmod 644 ./*.crl
rm -f ca.db/err
rm -f ./*.srl
chmod 600 ./*.key
relay_said="(${servers[*]})"
[[ $only_revoke -eq 0 && $api_only -eq 0 ]] || relay_said="(unchanged)"
api_said=
[[ ${#api_names[@]} -eq 0 ]] || api_said=", zgate-api api.crt (${api_names[*]})"
[[ ${#api_relays[@]} -eq 0 ]] || api_said+=", zgate-api relays: ${api_relays[*]/#/relay:}"
[[ ${#api_admins[@]} -eq 0 ]] || api_said+=", zgate-api admins: ${api_admins[*]/#/admin:}"
[[ ${#connectors[@]} -eq 0 ]] || api_said+=", connectors: ${connectors[*]/#/connector:}"
echo "gen-certs.sh: PKI in $(pwd): CA ca.crt, relay relay.crt $relay_said, clients: ${clients[*]:-none}$api_said, CRL ca.crl${revoke[*]:+ (revoked now: ${revoke[*]})}"
