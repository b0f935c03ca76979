/*
 * persist.c -- benchmark: rpmem_persist of 64 B, 4 KiB and 1 MiB through
 * PMDK's C API (librpmem.so.1), one lane, the default flags.
 *
 * usage: persist <target> <pool set> <pool size> <ops>
 * Creates the pool with attributes, runs 100 untimed persists per size,
 * then <ops> timed ones (at most 2000 for 1 MiB), each of a range that
 * begins after the pool header, and prints one line per size:
 *   persist size=<bytes> n=<n> p50_ns=<ns> p99_ns=<ns>
 * and closes and removes the pool.
 */
#include <librpmem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int
main(int argc, char *argv[])
{
	if (argc != 5) {
		fprintf(stderr,
			"usage: persist <target> <pool set> <pool size> <ops>\n");
		return 2;
	}
	size_t size = (size_t)strtoull(argv[3], NULL, 0);
	long ops = atol(argv[4]);
	if (size < (2u << 20) || ops <= 0) {
		fprintf(stderr, "persist: pool size >= 2 MiB and ops > 0\n");
		return 2;
	}
	void *pool;
	if (posix_memalign(&pool, 4096, size)) {
		fprintf(stderr, "persist: out of memory\n");
		return 1;
	}
	memset(pool, 0x5a, size);
	struct rpmem_pool_attr attr;
	memset(&attr, 0, sizeof(attr));
	memcpy(attr.signature, "BENCH", 5);
	attr.major = 1;
	unsigned nlanes = 1;
	RPMEMpool *rpp = rpmem_create(argv[1], argv[2], pool, size, &nlanes,
		&attr);
	if (!rpp) {
		fprintf(stderr, "persist: rpmem_create: %s\n",
			rpmem_errormsg());
		return 1;
	}
	uint64_t *lat = calloc((size_t)ops, sizeof(*lat));
	if (!lat) {
		fprintf(stderr, "persist: out of memory\n");
		return 1;
	}
	const size_t sizes[] = {64, 4096, 1 << 20};
	for (unsigned s = 0; s < 3; s++) {
		size_t len = sizes[s];
		long n = len >= (1 << 20) && ops > 2000 ? 2000 : ops;
		for (long i = -100; i < n; i++) {
			((volatile char *)pool)[4096] = (char)i;
			uint64_t t0 = now_ns();
			if (rpmem_persist(rpp, 4096, len, 0, 0)) {
				fprintf(stderr, "persist: rpmem_persist: %s\n",
					rpmem_errormsg());
				return 1;
			}
			if (i >= 0)
				lat[i] = now_ns() - t0;
		}
		qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
		printf("persist size=%zu n=%ld p50_ns=%llu p99_ns=%llu\n", len,
			n, (unsigned long long)lat[n / 2],
			(unsigned long long)lat[(n * 99) / 100]);
	}
	if (rpmem_close(rpp)) {
		fprintf(stderr, "persist: rpmem_close: %s\n", rpmem_errormsg());
		return 1;
	}
	if (rpmem_remove(argv[1], argv[2], 0)) {
		fprintf(stderr, "persist: rpmem_remove: %s\n",
			rpmem_errormsg());
		return 1;
	}
	free(lat);
	free(pool);
	return 0;
}
