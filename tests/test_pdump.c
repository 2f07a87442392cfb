/* Unit tests for src/relay/pdump: debug.payload_dump, the record file
 * t_connector.sh reads to prove the relay never sees what a connector
 * carries. Off unless a file is named; each packet a record of a 4-byte
 * big-endian length and the packet exactly; appended, mode 0600. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "relay/pdump.h"
#include "zg_err.h"

static char dir[64], path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/zg-pdump-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/payload.bin", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	(void)unlink(path);
	return rmdir(dir);
}

/* The whole file into buf; its length. */
static size_t slurp(uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void test_header(void **state)
{
	uint8_t h[PDUMP_HDR];

	(void)state;
	assert_int_equal(pdump_header(h, 0), 0);
	assert_memory_equal(h, "\0\0\0\0", 4);
	assert_int_equal(pdump_header(h, 84), 0);
	assert_memory_equal(h, "\0\0\0\x54", 4);
	assert_int_equal(pdump_header(h, 0x01020304), 0);
	assert_memory_equal(h, "\x01\x02\x03\x04", 4);
	assert_int_equal(pdump_header(h, UINT32_MAX), 0);
	assert_memory_equal(h, "\xff\xff\xff\xff", 4);
#if SIZE_MAX > UINT32_MAX
	assert_int_equal(pdump_header(h, (size_t)UINT32_MAX + 1), ZG_ERR_RANGE);
#endif
}

/* Off by default: nothing written, no file made, also for "" (the
 * default of debug.payload_dump). */
static void test_off_by_default(void **state)
{
	struct pdump d;
	static const uint8_t pkt[20] = { 0x45 };

	(void)state;
	pdump_init(&d);
	assert_false(pdump_on(&d));
	pdump_packet(&d, pkt, sizeof(pkt));
	assert_int_equal(d.records, 0);
	assert_int_equal(pdump_open(&d, ""), 0);
	assert_false(pdump_on(&d));
	pdump_packet(&d, pkt, sizeof(pkt));
	assert_int_equal(pdump_open(&d, NULL), 0);
	assert_false(pdump_on(&d));
	pdump_close(&d);
	assert_int_equal(access(path, F_OK), -1);
}

/* What a decrypted packet becomes in the file: its length, then it. */
static void test_records(void **state)
{
	/* an IPv4/UDP packet as a tunnel carries it, 32 bytes */
	static const uint8_t udp[32] = { 0x45, 0x00, 0x00, 0x20, 0, 0, 0x40, 0, 64, 17, 0, 0,
					 100, 64, 0, 2, 10, 20, 3, 4, 0x9c, 0x40, 0x15, 0x38,
					 0, 12, 0, 0, 'z', 'g', '!', '\n' };
	static const uint8_t ip6[40] = { 0x60, [6] = 59, [7] = 64, [8] = 0xfd, [24] = 0xfd };
	uint8_t buf[256], want[256];
	struct stat st;
	struct pdump d;
	size_t n, w = 0;

	(void)state;
	assert_int_equal(pdump_open(&d, path), 0);
	assert_true(pdump_on(&d));
	pdump_packet(&d, udp, sizeof(udp));
	pdump_packet(&d, ip6, sizeof(ip6));
	pdump_packet(&d, udp, 0); /* an empty one is a bare header */
	assert_int_equal(d.records, 3);
	assert_int_equal(d.errors, 0);
	pdump_close(&d);
	assert_false(pdump_on(&d));
	memcpy(want + w, "\0\0\0\x20", 4);
	memcpy(want + w + 4, udp, sizeof(udp));
	w += 4 + sizeof(udp);
	memcpy(want + w, "\0\0\0\x28", 4);
	memcpy(want + w + 4, ip6, sizeof(ip6));
	w += 4 + sizeof(ip6);
	memcpy(want + w, "\0\0\0\0", 4);
	w += 4;
	n = slurp(buf, sizeof(buf));
	assert_int_equal(n, w);
	assert_memory_equal(buf, want, w);
	/* only its owner may read it */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* opened again: appended, the records before kept */
	assert_int_equal(pdump_open(&d, path), 0);
	pdump_packet(&d, udp, sizeof(udp));
	pdump_close(&d);
	n = slurp(buf, sizeof(buf));
	assert_int_equal(n, w + 4 + sizeof(udp));
	assert_memory_equal(buf, want, w);
	assert_memory_equal(buf + w, want, 4 + sizeof(udp));
}

static void test_errors(void **state)
{
	struct pdump d;
	char bad[160];
	static const uint8_t pkt[20] = { 0x45 };

	(void)state;
	/* a directory that does not exist: an error, and off */
	snprintf(bad, sizeof(bad), "%s/none/payload.bin", dir);
	assert_int_equal(pdump_open(&d, bad), ZG_ERR_IO);
	assert_false(pdump_on(&d));
	/* a file that cannot take writes: counted, never fatal */
	assert_int_equal(pdump_open(&d, "/dev/full"), 0);
	pdump_packet(&d, pkt, sizeof(pkt));
	pdump_packet(&d, pkt, sizeof(pkt));
	assert_int_equal(d.errors, 2);
	assert_int_equal(d.records, 0);
	assert_true(d.failing);
	pdump_close(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_off_by_default),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
