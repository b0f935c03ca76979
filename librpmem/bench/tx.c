/*
 * tx.c -- benchmark: libpmemobj transactions of one 64-byte range, on the
 * pool set given (local only, or with a remote replica through
 * librpmem.so.1).
 *
 * usage: tx <pool set> <transactions>
 * Creates the pool (the pool set's size), runs 200 untimed transactions,
 * then <transactions> timed ones, each TX_BEGIN { pmemobj_tx_add_range(64 B);
 * write the 64 bytes } TX_END on the root object, and prints one line:
 *   tx n=<n> p50_ns=<ns> p99_ns=<ns> persists=<p>
 * where <p> is the number of rpmem_persist calls the timed transactions
 * made, counted by the shim (shim.c) when libpmemobj loaded it as
 * librpmem.so.1, else -1.
 */
#include <dlfcn.h>
#include <libpmemobj.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD 64
#define SLOTS 64
#define WARMUP 200

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The shim's counter, if libpmemobj loaded the shim as librpmem.so.1. */
static long long
persists(void)
{
	void *h = dlopen("librpmem.so.1", RTLD_NOW | RTLD_NOLOAD);
	if (!h)
		return -1;
	long long (*count)(void) =
		(long long (*)(void))dlsym(h, "rpmem_shim_persists");
	long long n = count ? count() : -1;
	dlclose(h);
	return n;
}

static int
one_tx(PMEMobjpool *pop, PMEMoid root, unsigned i)
{
	int ok = 1;
	char *base = pmemobj_direct(root);
	uint64_t off = (uint64_t)(i % SLOTS) * RECORD;
	TX_BEGIN(pop) {
		pmemobj_tx_add_range(root, off, RECORD);
		memset(base + off, (int)(i & 0xff), RECORD);
	} TX_ONABORT {
		ok = 0;
	} TX_END
	return ok;
}

int
main(int argc, char *argv[])
{
	if (argc != 3) {
		fprintf(stderr, "usage: tx <pool set> <transactions>\n");
		return 2;
	}
	long n = atol(argv[2]);
	if (n <= 0) {
		fprintf(stderr, "tx: transactions must be positive\n");
		return 2;
	}
	PMEMobjpool *pop = pmemobj_create(argv[1], "bench", 0, 0600);
	if (!pop) {
		fprintf(stderr, "tx: pmemobj_create %s: %s\n", argv[1],
			pmemobj_errormsg());
		return 1;
	}
	PMEMoid root = pmemobj_root(pop, RECORD * SLOTS);
	if (OID_IS_NULL(root)) {
		fprintf(stderr, "tx: pmemobj_root: %s\n", pmemobj_errormsg());
		return 1;
	}
	for (unsigned i = 0; i < WARMUP; i++)
		if (!one_tx(pop, root, i)) {
			fprintf(stderr, "tx: a warm-up transaction aborted\n");
			return 1;
		}
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	if (!lat) {
		fprintf(stderr, "tx: out of memory\n");
		return 1;
	}
	long long before = persists();
	for (long i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		if (!one_tx(pop, root, (unsigned)i)) {
			fprintf(stderr, "tx: transaction %ld aborted\n", i);
			return 1;
		}
		lat[i] = now_ns() - t0;
	}
	long long after = persists();
	pmemobj_close(pop);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	printf("tx n=%ld p50_ns=%llu p99_ns=%llu persists=%lld\n", n,
		(unsigned long long)lat[n / 2],
		(unsigned long long)lat[(n * 99) / 100],
		before < 0 ? -1LL : after - before);
	free(lat);
	return 0;
}
