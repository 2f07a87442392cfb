/*
 * metrics_merge.h — one relay's /metrics from its workers' expositions
 * (issue 21, target 3: "metrics stay per relay, not per worker").
 *
 * Each worker renders its own text with metrics_write() (metrics.h); the
 * master collects the N texts and metrics_merge() makes the one text the
 * relay serves. A pure function: bytes in, bytes out, no I/O. The
 * relay's master (master.c) serves it on /metrics.
 *
 * Input: the text format 0.0.4 as metrics_write() writes it, and nothing
 * looser. Per family, an optional "# HELP name text" line, directly
 * followed by "# TYPE name type" (counter, gauge, histogram or summary),
 * then the family's samples: "name value" or "name{labels} value", no
 * timestamp. Other comment lines and empty lines are skipped. A value is
 * a decimal as metrics.c prints it: an optional '-', 1 to 20 digits, and
 * optionally '.' and 1 to 9 digits (metrics.c prints integers with %llu
 * or %lld and seconds as exact decimals with up to 6 digits after the
 * point, trailing zeros dropped; no exponent, NaN or Inf).
 *
 * A series is a sample's name and its label set, the labels compared
 * byte for byte as written: metrics.c always writes a family's labels in
 * the same order and spelling, so the same series reads the same in every
 * worker's text (a renderer that reordered labels would make two series).
 *
 * Output: every family in the order of the first text (families missing
 * from it follow, in the order they first appear), with the HELP and TYPE
 * lines of the first text that has the family; inside a family, its series
 * in the order they first appear. Each series is written once, with the
 * value its family's rule gives over the texts that have it; a series
 * present in only some texts is still written (from those). Values are
 * exact (no floating point): a result with no fractional part is written
 * as an integer, any other as metrics.c writes seconds (digits after the
 * point, trailing zeros dropped).
 *
 * The rules (metrics_merge_rule()):
 *  - counters, histograms (_bucket, _sum, _count) and summaries (_sum,
 *    _count) add up: the relay did what its workers did. A summary's
 *    quantile samples cannot be added and are an error (metrics.c writes
 *    no summary).
 *    Except zgate_policy_reloads_total and zgate_tls_reloads_total: the
 *    maximum, since every worker reloads on the relay's one trigger
 *    (SIGHUP forwarded to all, or the changed file each sees).
 *  - gauges add up (sessions, flows, windows, memory, caches, pending
 *    requests, connectors: each worker holds its own), except the families
 *    that describe a process or the configuration rather than a quantity
 *    the workers share out:
 *      first (the value of the first text that has the series):
 *        zgate_build_info      the build; every worker is the same binary
 *                              (a worker of another build shows as a series
 *                              of its own labels, value 1)
 *        zgate_flow_descriptor_budget  configuration (a worker's budget
 *                              from its RLIMIT_NOFILE), the same in every
 *                              worker, not a share of anything
 *        zgate_pool_size, zgate_pool_used  the address pool is one
 *                              allocator shared by all workers (ipam.h,
 *                              ipam_new_shared): each reads the same pool,
 *                              a sum would count it N times
 *      min (the earliest, or the worst worker's):
 *        zgate_tls_cert_expiry_timestamp_seconds  after a reload, a worker
 *                              whose reload failed still serves the older
 *                              certificate: the relay expires when its
 *                              first worker does
 *        zgate_tls_crl_next_update_timestamp_seconds  likewise: past the
 *                              earliest, some worker refuses every client
 *        zgate_policy_last_reload_success_timestamp_seconds  the oldest
 *                              policy still in force in some worker (a
 *                              staleness alert must see it)
 *        zgate_ipam_api_up     0 when any worker's last request to
 *                              zgate-api failed (a sum would not be 0/1)
 *        process_max_fds       every worker's limit is the same (inherited
 *                              across fork); if not, the smallest binds
 *      max:
 *        process_open_fds      the fullest worker: with process_max_fds
 *                              (min) the usual open/max alert keeps its
 *                              meaning (a sum over N processes against one
 *                              process's limit would not)
 *      same (the value when every text that has the series agrees,
 *      else -1):
 *        zgate_policy_api_version  the zgate-api policy version loaded: -1
 *                              while workers differ (a reload under way or
 *                              failed in one); not min or max, since after
 *                              a rollback (3 activated again over 7) the
 *                              version in force is the lower number
 *    A new gauge family is summed until it is added to this list;
 *    test_metrics_merge fails when the golden text has a gauge the test's
 *    table does not classify.
 *
 * Bounds: at most METRICS_MERGE_MAX_TEXTS texts, lines of at most
 * METRICS_MERGE_MAX_LINE bytes, METRICS_MERGE_MAX_FAMILIES families and
 * METRICS_MERGE_MAX_SERIES series in all. Memory is a few dozen bytes per
 * family and series (names and help texts are not copied: they point into
 * the input texts, which must outlive the call only). Sums cannot
 * overflow within these bounds (128-bit fixed point).
 */
#ifndef ZG_METRICS_MERGE_H
#define ZG_METRICS_MERGE_H

#include <stddef.h>

#include <event2/buffer.h>

#define METRICS_MERGE_MAX_TEXTS 4096
#define METRICS_MERGE_MAX_LINE 4096
#define METRICS_MERGE_MAX_FAMILIES 10000
#define METRICS_MERGE_MAX_SERIES 100000

/* One worker's exposition: len bytes at s (need not be NUL-terminated). */
struct metrics_text {
	const char *s;
	size_t len;
};

enum metrics_merge_op {
	METRICS_MERGE_SUM = 0,
	METRICS_MERGE_FIRST,
	METRICS_MERGE_MIN,
	METRICS_MERGE_MAX,
	METRICS_MERGE_SAME, /* the value when every text agrees, else -1 */
};

/* Appends to b the merge of the n texts (the rules above). Returns 0 (n 0:
 * nothing appended); ZG_ERR_MALFORMED for a text that is not what
 * metrics_write() writes (a bad line, a sample outside its family or
 * before its TYPE, a family twice in one text, a series twice in one
 * text, a family typed differently in two texts, a negative counter),
 * ZG_ERR_TOO_LARGE for a line over METRICS_MERGE_MAX_LINE, ZG_ERR_LIMIT
 * over METRICS_MERGE_MAX_FAMILIES or _SERIES, ZG_ERR_INVAL for n over
 * METRICS_MERGE_MAX_TEXTS or a NULL text: on these b is untouched and
 * err (errlen bytes, may be NULL/0) says which text (its index in texts,
 * from 0) and which line (from 1). ZG_ERR_NOMEM: out of memory, b may
 * then hold a truncated text. */
int metrics_merge(struct evbuffer *b, const struct metrics_text *texts, size_t n, char *err,
		  size_t errlen);

/* The rule for the family name (nlen bytes) of type type ("gauge",
 * "counter", ...): METRICS_MERGE_SUM for every family but the gauges
 * listed above. */
enum metrics_merge_op metrics_merge_rule(const char *name, size_t nlen, const char *type);

#endif /* ZG_METRICS_MERGE_H */
