/* Unit tests for src/relay/master: the session lines the workers send the
 * master for the admin list, the notes between workers, and the
 * descriptors master_open() makes (real sockets: the UDP group, the
 * channels, the pipes) and master_worker_keep() closes. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay/master.h"
#include "relay/ops.h"
#include "zg_err.h"

static int is_open(int fd)
{
	return fd >= 0 && fcntl(fd, F_GETFD) != -1;
}

/* /ready's note from the workers': agreeing ones once, a degraded one
 * wins over a stale "up", differing ones one line each, nothing stays
 * nothing, and a short buffer is cut, not overrun. */
static void test_ready_merge(void **state)
{
	char buf[128], tiny[12];
	const char *same[] = { "ipam_api: up", "ipam_api: up" };
	const char *stale[] = { "ipam_api: up", "!ipam_api: down for 0 s: connect: refused" };
	const char *both[] = { "!ipam_api: down for 1 s: x", "!ipam_api: down for 0 s: y", "" };
	const char *none[] = { "", "" };
	const char *one[] = { "", "ipam_api: not asked yet" };

	(void)state;
	master_ready_merge(same, 2, buf, sizeof(buf));
	assert_string_equal(buf, "ipam_api: up");
	master_ready_merge(stale, 2, buf, sizeof(buf));
	assert_string_equal(buf, "ipam_api: down for 0 s: connect: refused");
	master_ready_merge(both, 3, buf, sizeof(buf));
	assert_string_equal(buf, "worker 0: ipam_api: down for 1 s: x\n"
				 "worker 1: ipam_api: down for 0 s: y");
	master_ready_merge(none, 2, buf, sizeof(buf));
	assert_string_equal(buf, "");
	master_ready_merge(one, 2, buf, sizeof(buf));
	assert_string_equal(buf, "ipam_api: not asked yet");
	master_ready_merge(both, 3, tiny, sizeof(tiny));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_memory_equal(tiny, "worker 0: i", sizeof(tiny) - 1);
}

static void test_session_line_round_trip(void **state)
{
	struct ops_session s = { .client = "agent-1", .addr4 = "10.100.0.7", .addr6 = "fd00::7", .peer = "192.168.81.2:40000", .since = 1795575001, .bytes_up = 123, .bytes_down = 18446744073709551615ull, .cert_serial = "0a1b" };
	struct ops_session p;
	char line[512];
	size_t n;

	(void)state;
	n = master_session_line(&s, line, sizeof(line));
	assert_int_equal(n, strlen(line));
	assert_string_equal(line, "agent-1\t10.100.0.7\tfd00::7\t192.168.81.2:40000\t1795575001\t123"
				  "\t18446744073709551615\t0a1b\n");
	assert_int_equal(master_session_parse(line, &p), 0);
	assert_string_equal(p.client, "agent-1");
	assert_string_equal(p.addr4, "10.100.0.7");
	assert_string_equal(p.addr6, "fd00::7");
	assert_string_equal(p.peer, "192.168.81.2:40000");
	assert_int_equal(p.since, 1795575001);
	assert_int_equal(p.bytes_up, 123);
	assert_true(p.bytes_down == 18446744073709551615ull);
	assert_string_equal(p.cert_serial, "0a1b");

	/* no IPv6, no serial; a tab or newline in a field cannot split it */
	s.addr6 = NULL;
	s.cert_serial = NULL;
	s.client = "evil\tname\nx\\";
	n = master_session_line(&s, line, sizeof(line));
	assert_int_equal(master_session_parse(line, &p), 0);
	assert_string_equal(p.client, "evil?name?x?");
	assert_null(p.addr6);
	assert_null(p.cert_serial);
	/* cut short: still one line, and it does not parse as a session */
	n = master_session_line(&s, line, 20);
	assert_int_equal(n, 19);
	assert_int_not_equal(master_session_parse(line, &p), 0);
}

static void test_session_parse_refuses(void **state)
{
	static const char *bad[] = {
		"",
		"a\tb\tc",
		"\t10.0.0.1\t\tp\t1\t2\t3\ts",         /* no client */
		"a\t10.0.0.1\t\tp\tx\t2\t3\ts",        /* since */
		"a\t10.0.0.1\t\tp\t1\t-\t3\ts",        /* bytes */
		"a\t10.0.0.1\t\tp\t1\t2\t3\ts\textra", /* nine fields */
		"a\t10.0.0.1\t\tp\t1\t2\t99999999999999999999999\ts",
	};
	struct ops_session p;
	char line[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(line, sizeof(line), "%s", bad[i]);
		assert_int_equal(master_session_parse(line, &p), ZG_ERR_MALFORMED);
	}
}

static void test_open_notes_keep(void **state)
{
	static struct master_env env;
	struct sockaddr_in a, b;
	socklen_t la = sizeof(a), lb = sizeof(b);
	char err[256], id[MASTER_NOTE_MAX + 1];
	uint8_t kind;

	(void)state;
	assert_int_equal(master_open(&env, 1, "127.0.0.1:0", err, sizeof(err)), ZG_ERR_INVAL);
	/* not host:port (a name would be asked of the machine's DNS server:
	 * tests stay on the machine) */
	assert_int_not_equal(master_open(&env, 3, "127.0.0.1:port", err, sizeof(err)), 0);
	assert_int_equal(master_open(&env, 3, "127.0.0.1:0", err, sizeof(err)), 0);
	/* one port, three sockets */
	assert_int_equal(getsockname(env.udp[0], (struct sockaddr *)&a, &la), 0);
	assert_int_equal(getsockname(env.udp[2], (struct sockaddr *)&b, &lb), 0);
	assert_int_equal(a.sin_port, b.sin_port);
	assert_true(is_open(master_audit_wr(&env, 2)));
	assert_int_equal(master_audit_wr(&env, 3), -1);

	/* worker 1 tells the others; 0 and 2 read it, 1 does not */
	assert_int_equal(master_note_send(&env, 1, MASTER_NOTE_OPENED, "agent-1"), 0);
	assert_int_equal(master_note_recv(&env, 0, &kind, id, sizeof(id)), 1);
	assert_int_equal(kind, MASTER_NOTE_OPENED);
	assert_string_equal(id, "agent-1");
	assert_int_equal(master_note_recv(&env, 0, &kind, id, sizeof(id)), 0);
	assert_int_equal(master_note_recv(&env, 2, &kind, id, sizeof(id)), 1);
	assert_int_equal(master_note_recv(&env, 1, &kind, id, sizeof(id)), 0);
	assert_int_equal(master_note_send(&env, 1, MASTER_NOTE_OPENED, ""), ZG_ERR_INVAL);
	{
		char longid[80];

		memset(longid, 'x', sizeof(longid) - 1);
		longid[sizeof(longid) - 1] = '\0';
		assert_int_equal(master_note_send(&env, 1, MASTER_NOTE_OPENED, longid),
				 ZG_ERR_INVAL);
	}
	/* a malformed note (a NUL inside) is refused, the next one read */
	assert_int_equal(send(env.notes.wr[0], "O\2\0x", 4, 0), 4);
	assert_int_equal(master_note_send(&env, 2, MASTER_NOTE_OPENED, "agent-2"), 0);
	assert_int_equal(master_note_recv(&env, 0, &kind, id, sizeof(id)), ZG_ERR_MALFORMED);
	assert_int_equal(master_note_recv(&env, 0, &kind, id, sizeof(id)), 1);
	assert_string_equal(id, "agent-2");
	assert_int_equal(master_note_recv(&env, 0, &kind, id, 8), ZG_ERR_INVAL);

	/* notes with a payload, to one worker or all; the sender is named */
	{
		static uint8_t big[MASTER_NOTE_PAYLOAD_MAX + 1], got[MASTER_NOTE_PAYLOAD_MAX];
		unsigned from = 9;
		size_t len = 0;

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)i;
		/* worker 1 still has agent-2's note from above */
		assert_int_equal(master_note_recv(&env, 1, &kind, id, sizeof(id)), 1);
		assert_string_equal(id, "agent-2");
		assert_int_equal(master_note_put(&env, 2, 0, MASTER_NOTE_CONN_UP, big,
						 MASTER_NOTE_PAYLOAD_MAX),
				 0);
		assert_int_equal(master_note_recv(&env, 1, &kind, id, sizeof(id)), 0); /* not to 1 */
		assert_int_equal(master_note_get(&env, 0, &kind, &from, got, sizeof(got), &len), 1);
		assert_int_equal(kind, MASTER_NOTE_CONN_UP);
		assert_int_equal(from, 2);
		assert_int_equal(len, MASTER_NOTE_PAYLOAD_MAX);
		assert_memory_equal(got, big, len);
		assert_int_equal(master_note_put(&env, 2, MASTER_NOTE_ALL, MASTER_NOTE_HELLO, NULL, 0),
				 0);
		assert_int_equal(master_note_get(&env, 1, &kind, &from, got, sizeof(got), &len), 1);
		assert_int_equal(kind, MASTER_NOTE_HELLO);
		assert_int_equal(len, 0);
		assert_int_equal(master_note_get(&env, 0, &kind, &from, got, sizeof(got), &len), 1);
		/* a HELLO is no client ID: master_note_recv() refuses it */
		assert_int_equal(master_note_put(&env, 1, 0, MASTER_NOTE_HELLO, NULL, 0), 0);
		assert_int_equal(master_note_recv(&env, 0, &kind, id, sizeof(id)), ZG_ERR_MALFORMED);
		assert_int_equal(master_note_put(&env, 2, 0, 'X', big, sizeof(big)), ZG_ERR_INVAL);
		assert_int_equal(master_note_put(&env, 2, 2, 'X', big, 1), ZG_ERR_INVAL);
		assert_int_equal(master_note_put(&env, 2, 3, 'X', big, 1), ZG_ERR_INVAL);
		/* from a worker that does not exist, or from itself: malformed */
		assert_int_equal(send(env.notes.wr[0], "H\7", 2, 0), 2);
		assert_int_equal(master_note_get(&env, 0, &kind, &from, got, sizeof(got), &len),
				 ZG_ERR_MALFORMED);
		assert_int_equal(send(env.notes.wr[0], "H\0", 2, 0), 2);
		assert_int_equal(master_note_get(&env, 0, &kind, &from, got, sizeof(got), &len),
				 ZG_ERR_MALFORMED);
		assert_int_equal(master_note_get(&env, 0, &kind, &from, got, sizeof(got), &len), 0);
	}

	/* packets: to one worker, with the session ID */
	{
		static uint8_t buf[MASTER_XFER_HDR + MASTER_XFER_PKT_MAX], pkt[1400];
		const uint8_t *p = NULL;
		unsigned from = 9;
		uint64_t sid = 0;
		size_t len = 0;

		memset(pkt, 0x45, sizeof(pkt));
		assert_int_equal(master_xfer_send(&env, 1, 2, MASTER_XFER_TO_CONNECTOR,
						  0x0102030405060708ULL, pkt, sizeof(pkt)),
				 0);
		assert_int_equal(master_xfer_recv(&env, 0, buf, sizeof(buf), &kind, &from, &sid, &p,
						  &len),
				 0);
		assert_int_equal(master_xfer_recv(&env, 2, buf, sizeof(buf), &kind, &from, &sid, &p,
						  &len),
				 1);
		assert_int_equal(kind, MASTER_XFER_TO_CONNECTOR);
		assert_int_equal(from, 1);
		assert_true(sid == 0x0102030405060708ULL);
		assert_int_equal(len, sizeof(pkt));
		assert_memory_equal(p, pkt, len);
		assert_int_equal(master_xfer_send(&env, 1, 1, 'U', 1, pkt, 10), ZG_ERR_INVAL);
		assert_int_equal(master_xfer_send(&env, 1, 3, 'U', 1, pkt, 10), ZG_ERR_INVAL);
		assert_int_equal(master_xfer_send(&env, 1, 0, 'U', 1, pkt, 0), ZG_ERR_INVAL);
		assert_int_equal(send(env.xfer.wr[0], "U\1", 2, 0), 2);
		assert_int_equal(master_xfer_recv(&env, 0, buf, sizeof(buf), &kind, &from, &sid, &p,
						  &len),
				 ZG_ERR_MALFORMED);
		/* a full channel drops, never blocks */
		{
			int rv;
			size_t sent = 0;

			while ((rv = master_xfer_send(&env, 1, 0, 'U', 1, pkt, sizeof(pkt))) == 0)
				sent++;
			assert_int_equal(rv, ZG_ERR_LIMIT);
			assert_true(sent > 0);
			while (master_xfer_recv(&env, 0, buf, sizeof(buf), &kind, &from, &sid, &p,
						&len) == 1)
				sent--;
			assert_int_equal(sent, 0);
		}
	}

	/* worker 1 keeps its own socket, channel ends and pipe only */
	{
		int udp0 = env.udp[0], udp1 = env.udp[1], ctl0m = env.ctl[0][0];
		int ctl1w = env.ctl[1][1], ap1r = env.apipe[1][0], ap1w = env.apipe[1][1];

		/* in a child: everything else inherited is closed */
		int extra = open("/dev/null", O_RDONLY), st;
		pid_t pid;

		assert_true(extra > 2);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			master_worker_keep(&env, 1);
			if (master_worker_close_inherited(&env, 1) < 1 || is_open(extra) ||
			    !is_open(udp1) || !is_open(ctl1w) || !is_open(ap1w) ||
			    !is_open(env.notes.rd[1]) || !is_open(env.steer.wr[0]) || !is_open(2))
				_exit(1);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		assert_true(is_open(extra));
		close(extra);
		master_worker_keep(&env, 1);
		assert_false(is_open(udp0));
		assert_true(is_open(udp1));
		assert_false(is_open(ctl0m));
		assert_true(is_open(ctl1w));
		assert_false(is_open(ap1r));
		assert_true(is_open(ap1w));
		assert_int_equal(env.udp[0], -1);
		assert_int_equal(env.ctl[1][0], -1);
		assert_true(is_open(env.notes.rd[1]));
		assert_int_equal(env.notes.rd[0], -1);
		close(udp1);
		close(ctl1w);
		close(ap1w);
		steer_group_close(&env.steer);
		steer_group_close(&env.notes);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_merge),
		cmocka_unit_test(test_session_line_round_trip),
		cmocka_unit_test(test_session_parse_refuses),
		cmocka_unit_test(test_open_notes_keep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
