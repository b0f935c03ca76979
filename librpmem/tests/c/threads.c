/*
 * threads.c -- an application that uses only librpmem.h: creates a pool
 * with attributes, persists from 4 threads at once (one lane each), reads
 * everything back and compares, replaces the attributes, closes, opens
 * again (the attributes come back), reads back again, removes the pool.
 *
 * usage: threads <pool set> <pool size>
 */
#include <pthread.h>
#include <stdint.h>

#include "check.h"

#define HOST "localhost"
#define NTHREADS 4
#define ROUNDS 40

struct worker {
	RPMEMpool *rpp;
	unsigned lane;
	char *base;     /* the pool's local memory */
	size_t off;     /* this thread's part of the pool */
	size_t len;
	pthread_barrier_t *start;
	int failed;
};

static uint64_t
next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void *
work(void *arg)
{
	struct worker *w = arg;
	uint64_t x = 0x9e3779b97f4a7c15ULL * (w->lane + 1);
	pthread_barrier_wait(w->start);
	for (int round = 0; round < ROUNDS; round++) {
		/* a range of 1 B to 256 KiB inside this thread's part */
		size_t len = 1 + next(&x) % (256 * 1024);
		if (len > w->len)
			len = w->len;
		size_t off = w->off + next(&x) % (w->len - len + 1);
		for (size_t i = 0; i < len; i++)
			w->base[off + i] = (char)(next(&x) >> 24);
		unsigned flags = (round % 2) ? RPMEM_PERSIST_RELAXED : 0;
		if (rpmem_persist(w->rpp, off, len, w->lane, flags)) {
			fprintf(stderr, "lane %u: rpmem_persist(%zu, %zu): %s\n",
				w->lane, off, len, rpmem_errormsg());
			w->failed = 1;
			return NULL;
		}
	}
	/* the whole part, once, so that every byte is on the target */
	if (rpmem_persist(w->rpp, w->off, w->len, w->lane, 0)) {
		fprintf(stderr, "lane %u: final rpmem_persist: %s\n", w->lane,
			rpmem_errormsg());
		w->failed = 1;
	}
	return NULL;
}

static void
compare_remote(RPMEMpool *rpp, const char *expect, size_t size)
{
	char *buf = map_pool(size);
	EXPECT_OK(rpmem_read(rpp, buf + 4096, 4096, size - 4096, 0));
	for (size_t i = 4096; i < size; i++)
		if (buf[i] != expect[i])
			FAIL("byte %zu: remote 0x%02x, local 0x%02x", i,
				(unsigned char)buf[i],
				(unsigned char)expect[i]);
	munmap(buf, size);
}

int
main(int argc, char *argv[])
{
	if (argc != 3)
		FAIL("usage: threads <pool set> <pool size>");
	const char *set = argv[1];
	size_t size = strtoull(argv[2], NULL, 0);
	int threads_before = count_threads();

	char *pool = map_pool(size);
	struct rpmem_pool_attr attr = test_attr(7);
	unsigned nlanes = NTHREADS;
	RPMEMpool *rpp = rpmem_create(HOST, set, pool, size, &nlanes, &attr);
	if (!rpp)
		FAIL("rpmem_create");
	CHECK(nlanes == NTHREADS);

	pthread_barrier_t start;
	CHECK(pthread_barrier_init(&start, NULL, NTHREADS) == 0);
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	size_t part = ((size - 4096) / NTHREADS) & ~(size_t)4095;
	for (unsigned i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ rpp, i, pool, 4096 + i * part, part,
				&start, 0 };
		CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		CHECK(pthread_join(t[i], NULL) == 0);
		CHECK(!w[i].failed);
	}
	pthread_barrier_destroy(&start);

	compare_remote(rpp, pool, size);

	struct rpmem_pool_attr attr2 = test_attr(9);
	EXPECT_OK(rpmem_set_attr(rpp, &attr2));
	EXPECT_OK(rpmem_close(rpp));
	/* the library's threads are gone with the pool */
	CHECK(count_threads() == threads_before);

	char *again = map_pool(size);
	struct rpmem_pool_attr got;
	memset(&got, 0, sizeof(got));
	nlanes = 2;
	rpp = rpmem_open(HOST, set, again, size, &nlanes, &got);
	if (!rpp)
		FAIL("rpmem_open");
	CHECK(nlanes == 2);
	CHECK(memcmp(&got, &attr2, sizeof(got)) == 0);
	compare_remote(rpp, pool, size);
	/* open with NULL attributes works too */
	EXPECT_OK(rpmem_close(rpp));
	nlanes = 1;
	rpp = rpmem_open(HOST, set, again, size, &nlanes, NULL);
	if (!rpp)
		FAIL("rpmem_open without attributes");
	EXPECT_OK(rpmem_close(rpp));

	EXPECT_OK(rpmem_remove(HOST, set, 0));
	nlanes = 1;
	EXPECT_NULL(rpmem_open(HOST, set, again, size, &nlanes, NULL), ENOENT);
	CHECK(count_threads() == threads_before);

	printf("threads: ok\n");
	return 0;
}
