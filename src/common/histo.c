/*
 * histo.c — fixed-bucket latency histogram (see histo.h).
 */
#include "histo.h"

const uint64_t zg_histo_bounds_us[ZG_HISTO_BOUNDS] = {
	1000,
	2500,
	5000,
	10000,
	25000,
	50000,
	100000,
	250000,
	500000,
	1000000,
	2500000,
	5000000,
	10000000,
};

void zg_histo_observe(struct zg_histo *h, uint64_t us)
{
	size_t i = 0;

	while (i < ZG_HISTO_BOUNDS && us > zg_histo_bounds_us[i])
		i++;
	h->n[i]++;
	h->count++;
	h->sum_us += us;
}
