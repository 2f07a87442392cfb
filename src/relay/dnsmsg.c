#include "relay/dnsmsg.h"

#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <ldns/ldns.h>
#pragma GCC diagnostic pop

#include "zg_err.h"

uint16_t dnsmsg_id(const uint8_t *msg)
{
	return (uint16_t)((msg[0] << 8) | msg[1]);
}

void dnsmsg_set_id(uint8_t *msg, uint16_t id)
{
	msg[0] = (uint8_t)(id >> 8);
	msg[1] = (uint8_t)id;
}

/* Past the (possibly compressed) name at p, or 0 when it runs off msg. */
static size_t skip_name(const uint8_t *msg, size_t len, size_t p)
{
	while (p < len) {
		uint8_t l = msg[p];

		if (l == 0)
			return p + 1;
		if ((l & 0xc0) == 0xc0)
			return p + 2 <= len ? p + 2 : 0;
		if (l & 0xc0)
			return 0;
		p += 1u + l;
	}
	return 0;
}

/* 1 when msg walks record by record (names, then type, class, TTL and
 * rdata by its length) within its length for every record its header
 * counts, and has no TSIG record (RFC 8945). The relay signs nothing and
 * checks no signature; and libldns 1.8.3's ldns_wire2pkt() keeps only the
 * last TSIG it reads and loses the others (a leak per message, found by
 * fuzz_dnsmsg). ldns also accepts some messages that do not walk (it
 * reads a TSIG's fields past its rdata length), and reads a record's
 * rdata only as far as the fields it knows: each record must be exactly
 * as long for ldns as its length says. Refused here first. */
static int walks_without_tsig(const uint8_t *msg, size_t len)
{
	size_t p = 12, n = 0, q, nq = (size_t)((msg[4] << 8) | msg[5]);

	for (unsigned k = 0; k < 4; k++)
		n += (size_t)((msg[4 + 2 * k] << 8) | msg[5 + 2 * k]);
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = NULL;
		size_t at = p;

		if ((q = skip_name(msg, len, p)) == 0 || q + (i < nq ? 4 : 10) > len)
			return 0;
		if (((msg[q] << 8) | msg[q + 1]) == 250)
			return 0;
		p = i < nq ? q + 4 : q + 10 + (size_t)((msg[q + 8] << 8) | msg[q + 9]);
		if (p > len)
			return 0;
		/* ldns must read the record exactly where its length says it
		 * ends. It stops after the fields it knows for the type (a
		 * CNAME's one name), and the bytes left in the rdata would be
		 * read as the next record: a message that walks here could
		 * hide a TSIG (or anything) from this walk (fuzz_dnsmsg). */
		if (ldns_wire2rr(&rr, msg, len, &at, i < nq ? LDNS_SECTION_QUESTION : LDNS_SECTION_ANSWER) !=
		    LDNS_STATUS_OK) {
			ldns_rr_free(rr);
			return 0;
		}
		ldns_rr_free(rr);
		if (at != p)
			return 0;
	}
	return 1;
}

/* One DNS message into *pp (the caller frees it): 0, or -1 when it is not
 * one ldns and this module accept. */
static int from_wire(const uint8_t *msg, size_t len, ldns_pkt **pp)
{
	*pp = NULL;
	if (len < 12 || len > 65535 || !walks_without_tsig(msg, len) ||
	    ldns_wire2pkt(pp, msg, len) != LDNS_STATUS_OK)
		return -1;
	return 0;
}

/* The single question of a query, or NULL. */
static ldns_rr *only_question(const ldns_pkt *p)
{
	ldns_rr_list *qs = ldns_pkt_question(p);

	if (ldns_pkt_qr(p) || ldns_pkt_get_opcode(p) != LDNS_PACKET_QUERY || qs == NULL ||
	    ldns_rr_list_rr_count(qs) != 1 || ldns_pkt_qdcount(p) != 1)
		return NULL;
	return ldns_rr_list_rr(qs, 0);
}

int dnsmsg_parse_query(const uint8_t *msg, size_t len, struct dnsmsg_query *q)
{
	ldns_pkt *p = NULL;
	ldns_rr *rr;
	char *name = NULL;
	const char *why;
	int r = ZG_ERR_MALFORMED;

	memset(q, 0, sizeof(*q));
	if (from_wire(msg, len, &p) != 0)
		return ZG_ERR_MALFORMED;
	if ((rr = only_question(p)) == NULL)
		goto out;
	q->id = ldns_pkt_id(p);
	q->qtype = (uint16_t)ldns_rr_get_type(rr);
	q->qclass = (uint16_t)ldns_rr_get_class(rr);
	q->udp_max = 512;
	if (ldns_pkt_edns(p) && ldns_pkt_edns_udp_size(p) > 512)
		q->udp_max = ldns_pkt_edns_udp_size(p) > DNSMSG_UDP_MAX ? DNSMSG_UDP_MAX
									: ldns_pkt_edns_udp_size(p);
	if (ldns_rr_owner(rr) == NULL || (name = ldns_rdf2str(ldns_rr_owner(rr))) == NULL) {
		r = ZG_ERR_NOMEM;
		goto out;
	}
	/* escapes (\032, \.) make the name invalid for the policy: kept "" */
	if (strlen(name) <= POLICY_NAME_MAX && policy_name_canon(name, 0, q->name, &why) == 0)
		q->name_ok = 1;
	else
		q->name[0] = '\0';
	r = 0;
out:
	free(name);
	ldns_pkt_free(p);
	return r;
}

int dnsmsg_build_reply(const uint8_t *query, size_t qlen, uint8_t rcode, int tc,
		       uint8_t **pout, size_t *poutlen)
{
	ldns_pkt *p = NULL, *a = NULL;
	ldns_rr *rr, *copy = NULL;
	int r = ZG_ERR_MALFORMED;

	if (from_wire(query, qlen, &p) != 0)
		return ZG_ERR_MALFORMED;
	if ((rr = only_question(p)) == NULL)
		goto out;
	r = ZG_ERR_NOMEM;
	if ((a = ldns_pkt_new()) == NULL || (copy = ldns_rr_clone(rr)) == NULL)
		goto out;
	ldns_pkt_set_id(a, ldns_pkt_id(p));
	ldns_pkt_set_qr(a, 1);
	ldns_pkt_set_opcode(a, LDNS_PACKET_QUERY);
	ldns_pkt_set_rd(a, ldns_pkt_rd(p));
	ldns_pkt_set_cd(a, ldns_pkt_cd(p));
	ldns_pkt_set_ra(a, 1);
	ldns_pkt_set_tc(a, tc != 0);
	ldns_pkt_set_rcode(a, rcode);
	if (!ldns_pkt_push_rr(a, LDNS_SECTION_QUESTION, copy)) {
		ldns_rr_free(copy);
		goto out;
	}
	if (ldns_pkt2wire(pout, a, poutlen) != LDNS_STATUS_OK)
		goto out;
	r = 0;
out:
	ldns_pkt_free(a);
	ldns_pkt_free(p);
	return r;
}

static uint32_t soa_minimum(const ldns_rr *rr)
{
	const ldns_rdf *f = ldns_rr_rdf(rr, 6);

	if (f == NULL || ldns_rdf_size(f) != 4 || (ldns_rdf_get_type(f) != LDNS_RDF_TYPE_INT32 && ldns_rdf_get_type(f) != LDNS_RDF_TYPE_PERIOD))
		return UINT32_MAX;
	return ldns_rdf2native_int32(f);
}

int dnsmsg_parse_answer(const uint8_t *msg, size_t len, struct dnsmsg_answer *a,
			struct dnsmsg_addr *addr, size_t max)
{
	ldns_pkt *p = NULL;
	ldns_pkt_section secs[3] = { LDNS_SECTION_ANSWER, LDNS_SECTION_AUTHORITY,
				     LDNS_SECTION_ADDITIONAL };

	memset(a, 0, sizeof(*a));
	if (from_wire(msg, len, &p) != 0)
		return ZG_ERR_MALFORMED;
	if (!ldns_pkt_qr(p)) {
		ldns_pkt_free(p);
		return ZG_ERR_MALFORMED;
	}
	a->id = ldns_pkt_id(p);
	a->rcode = (uint8_t)ldns_pkt_get_rcode(p);
	a->tc = ldns_pkt_tc(p);
	a->min_ttl = UINT32_MAX;
	for (size_t s = 0; s < 3; s++) {
		ldns_rr_list *l = ldns_pkt_get_section_clone(p, secs[s]);
		for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
			ldns_rr *rr = ldns_rr_list_rr(l, i);
			ldns_rr_type t = ldns_rr_get_type(rr);
			uint32_t ttl = ldns_rr_ttl(rr);
			if (t == LDNS_RR_TYPE_OPT)
				continue;
			if (t == LDNS_RR_TYPE_SOA && secs[s] == LDNS_SECTION_AUTHORITY &&
			    soa_minimum(rr) < ttl)
				ttl = soa_minimum(rr); /* RFC 2308 §5 */
			if (ttl < a->min_ttl)
				a->min_ttl = ttl;
			if (secs[s] != LDNS_SECTION_ANSWER ||
			    (t != LDNS_RR_TYPE_A && t != LDNS_RR_TYPE_AAAA))
				continue;
			const ldns_rdf *f = ldns_rr_rdf(rr, 0);
			size_t want = t == LDNS_RR_TYPE_A ? 4 : 16;
			if (f == NULL || ldns_rdf_size(f) != want)
				continue;
			a->naddr_seen++;
			if (a->naddr < max) {
				struct dnsmsg_addr *d = &addr[a->naddr++];
				memset(d, 0, sizeof(*d));
				d->version = want == 4 ? 4 : 6;
				memcpy(d->a, ldns_rdf_data(f), want);
				d->ttl = ttl;
			}
		}
		ldns_rr_list_deep_free(l);
	}
	ldns_pkt_free(p);
	return 0;
}

int dnsmsg_age(const uint8_t *msg, size_t len, uint16_t id, uint32_t age, uint8_t **pout,
	       size_t *poutlen)
{
	ldns_pkt *p = NULL;
	ldns_rr_list *ls[3];
	int r = ZG_ERR_NOMEM;

	if (from_wire(msg, len, &p) != 0)
		return ZG_ERR_MALFORMED;
	ls[0] = ldns_pkt_answer(p);
	ls[1] = ldns_pkt_authority(p);
	ls[2] = ldns_pkt_additional(p);
	for (size_t s = 0; s < 3; s++) {
		for (size_t i = 0; ls[s] && i < ldns_rr_list_rr_count(ls[s]); i++) {
			ldns_rr *rr = ldns_rr_list_rr(ls[s], i);
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_OPT)
				continue;
			ldns_rr_set_ttl(rr, ldns_rr_ttl(rr) > age ? ldns_rr_ttl(rr) - age : 0);
		}
	}
	ldns_pkt_set_id(p, id);
	if (ldns_pkt2wire(pout, p, poutlen) == LDNS_STATUS_OK)
		r = 0;
	ldns_pkt_free(p);
	return r;
}
