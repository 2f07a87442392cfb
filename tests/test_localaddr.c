/*
 * Unit tests for src/relay/localaddr: which host addresses become
 * forbidden destinations, and that the callback reports changes only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>

#include "relay/localaddr.h"
#include "sockaddr_fx.h"
#include "zg_err.h"

static void
set4(struct ifaddrs *i, struct sockaddr_in *sa, const char *s)
{
	*sa = fx_sin4(s, 0);
	i->ifa_addr = (struct sockaddr *)sa;
}

static void
set6(struct ifaddrs *i, struct sockaddr_in6 *sa, const char *s)
{
	*sa = fx_sin6(s, 0);
	i->ifa_addr = (struct sockaddr *)sa;
}

/* Loopback and link-local are skipped (never reachable anyway), duplicates
 * are stored once, entries without an address or of another family are
 * ignored, and what does not fit is counted. */
static void
test_i16_6_collect(void **state)
{
	struct ifaddrs ifa[8];
	struct sockaddr_in s4[4];
	struct sockaddr_in6 s6[3];
	struct stack_addr out[3];
	size_t n, skipped, i;

	(void)state;
	memset(ifa, 0, sizeof(ifa));
	for (i = 0; i + 1 < 8; i++)
		ifa[i].ifa_next = &ifa[i + 1];
	set4(&ifa[0], &s4[0], "127.0.0.1");
	set4(&ifa[1], &s4[1], "198.18.0.1");
	set6(&ifa[2], &s6[0], "::1");
	set6(&ifa[3], &s6[1], "fe80::1");
	set6(&ifa[4], &s6[2], "2001:db8:5::1");
	/* ifa[5]: no address (an interface without one) */
	set4(&ifa[6], &s4[2], "198.18.0.1"); /* the same on another interface */
	set4(&ifa[7], &s4[3], "192.168.81.1");
	n = localaddr_collect(ifa, out, 3, &skipped);
	assert_int_equal(n, 3);
	assert_int_equal(skipped, 0);
	assert_int_equal(out[0].version, 4);
	assert_int_equal(out[0].a[0], 198);
	assert_int_equal(out[1].version, 6);
	assert_int_equal(out[1].a[0], 0x20);
	assert_int_equal(out[2].a[0], 192);
	n = localaddr_collect(ifa, out, 1, &skipped);
	assert_int_equal(n, 1);
	assert_int_equal(skipped, 2);
	assert_int_equal(localaddr_collect(NULL, out, 3, NULL), 0);
}

struct rec {
	int calls;
	size_t n;
};

static void
on_addrs(void *ctx, const struct stack_addr *a, size_t n, size_t skipped)
{
	struct rec *r = ctx;

	(void)a;
	(void)skipped;
	r->calls++;
	r->n = n;
}

/* The set is reported once at start; a refresh that finds the same set is
 * silent. */
static void
test_i16_6_reports_changes_only(void **state)
{
	struct event_base *base = event_base_new();
	struct localaddr *l = NULL;
	struct rec r = { 0, 0 };

	(void)state;
	assert_non_null(base);
	assert_int_equal(localaddr_new(base, 0, on_addrs, &r, &l), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(localaddr_refresh(l), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	localaddr_del(l);
	localaddr_del(NULL);
	assert_int_equal(localaddr_new(base, 0, NULL, &r, &l), ZG_ERR_INVAL);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_i16_6_collect),
		cmocka_unit_test(test_i16_6_reports_changes_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
