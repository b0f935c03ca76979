/*
 * pmemobj_tx.c -- Debian's libpmemobj (PMDK 1.12.1) transactions on a pool
 * set with a remote replica, through our librpmem.so.1.
 *
 * usage:
 *   pmemobj_tx <pool set> write <threads> <records per thread>
 *	every thread writes its records, one transaction each: a new record
 *	(pmemobj_tx_zalloc, filled), its oid stored in the root object and the
 *	thread's count incremented (both pmemobj_tx_add_range), and the
 *	previous record's version and checksum updated in place
 *	(pmemobj_tx_add_range of an existing object: undo log of old bytes);
 *	prints "wrote <n> records"
 *   pmemobj_tx <pool set> check <threads> <records per thread>
 *	opens the pool and checks every record's contents, version and
 *	checksum, and the counts; prints "<n> records ok"
 *   pmemobj_tx <pool set> loop <max>
 *	one transaction after another, numbered from 0, until <max> (exit 0)
 *	or a failure: each one frees the record of its ring slot (RING
 *	slots), allocates its own record there and adds its number to the
 *	root's sum; the number of each committed transaction is printed on a
 *	line of its own and flushed as soon as TX_END returns
 *   pmemobj_tx <pool set> loopcheck
 *	opens the pool and checks the loop's state: count n, sum 0+...+(n-1)
 *	and the records of the last min(n, RING) transactions; prints
 *	"loop <n> ok"
 *
 * Every failure prints what failed and exits with status 1.
 */
#include <libpmemobj.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 8
#define MAX_PER_THREAD 64
#define PAYLOAD 200
#define RING 4096

struct record {
	uint32_t thread;
	uint32_t k;
	uint64_t version;
	uint64_t sum; /* of payload, updated with version */
	unsigned char payload[PAYLOAD];
};

struct root {
	uint64_t count[MAX_THREADS];
	PMEMoid recs[MAX_THREADS][MAX_PER_THREAD];
	/* the loop */
	uint64_t loop_count;
	uint64_t loop_sum;
	PMEMoid ring[RING];
};

#define DIE(...) do {\
	fprintf(stderr, __VA_ARGS__);\
	fprintf(stderr, " (pmemobj_errormsg: %s)\n", pmemobj_errormsg());\
	exit(1);\
} while (0)

static PMEMobjpool *Pop;
static PMEMoid Root_oid;
static struct root *Root;
static unsigned Per_thread;

static unsigned char
byte_at(size_t i, uint64_t a, uint64_t b)
{
	return (unsigned char)(i * 29 + a * 101 + b * 7 + (i >> 3) * a);
}

static uint64_t
payload_sum(const struct record *r)
{
	uint64_t s = 0;
	for (size_t i = 0; i < PAYLOAD; i++)
		s = s * 31 + r->payload[i];
	return s + r->version;
}

static void *
writer(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	for (unsigned k = 0; k < Per_thread; k++) {
		int failed = 0;
		TX_BEGIN(Pop) {
			PMEMoid oid = pmemobj_tx_zalloc(sizeof(struct record),
					1 + t);
			struct record *r = pmemobj_direct(oid);
			r->thread = t;
			r->k = k;
			for (size_t i = 0; i < PAYLOAD; i++)
				r->payload[i] = byte_at(i, t, k);
			r->sum = payload_sum(r);

			pmemobj_tx_add_range(Root_oid,
				offsetof(struct root, recs[t][k]),
				sizeof(PMEMoid));
			Root->recs[t][k] = oid;
			pmemobj_tx_add_range(Root_oid,
				offsetof(struct root, count[t]),
				sizeof(uint64_t));
			Root->count[t] = k + 1;

			if (k > 0) {
				PMEMoid prev = Root->recs[t][k - 1];
				struct record *p = pmemobj_direct(prev);
				pmemobj_tx_add_range(prev,
					offsetof(struct record, version),
					2 * sizeof(uint64_t));
				p->version++;
				p->sum = payload_sum(p);
			}
		} TX_ONABORT {
			failed = 1;
		} TX_END
		if (failed)
			DIE("thread %u: transaction %u aborted", t, k);
	}
	return NULL;
}

static void
check_records(unsigned nthreads)
{
	for (unsigned t = 0; t < nthreads; t++) {
		if (Root->count[t] != Per_thread)
			DIE("thread %u: count %llu, expected %u", t,
				(unsigned long long)Root->count[t], Per_thread);
		for (unsigned k = 0; k < Per_thread; k++) {
			struct record *r = pmemobj_direct(Root->recs[t][k]);
			if (!r)
				DIE("record %u/%u missing", t, k);
			if (pmemobj_type_num(Root->recs[t][k]) != 1 + t)
				DIE("record %u/%u has type %llu", t, k,
					(unsigned long long)pmemobj_type_num(
						Root->recs[t][k]));
			if (r->thread != t || r->k != k)
				DIE("record %u/%u says %u/%u", t, k, r->thread,
					r->k);
			uint64_t version = k + 1 < Per_thread ? 1 : 0;
			if (r->version != version)
				DIE("record %u/%u: version %llu, expected "
					"%llu", t, k,
					(unsigned long long)r->version,
					(unsigned long long)version);
			for (size_t i = 0; i < PAYLOAD; i++)
				if (r->payload[i] != byte_at(i, t, k))
					DIE("record %u/%u: payload byte %zu "
						"differs", t, k, i);
			if (r->sum != payload_sum(r))
				DIE("record %u/%u: checksum differs", t, k);
		}
	}
	for (unsigned t = nthreads; t < MAX_THREADS; t++)
		if (Root->count[t] != 0)
			DIE("thread %u never ran but has count %llu", t,
				(unsigned long long)Root->count[t]);
}

static void
loop(uint64_t max)
{
	for (uint64_t n = Root->loop_count; n < max; n++) {
		int failed = 0;
		TX_BEGIN(Pop) {
			size_t slot = n % RING;
			pmemobj_tx_add_range(Root_oid,
				offsetof(struct root, ring[slot]),
				sizeof(PMEMoid));
			if (!OID_IS_NULL(Root->ring[slot]))
				pmemobj_tx_free(Root->ring[slot]);
			PMEMoid oid = pmemobj_tx_alloc(sizeof(struct record),
					100);
			struct record *r = pmemobj_direct(oid);
			r->thread = 100;
			r->k = (uint32_t)n;
			r->version = n;
			for (size_t i = 0; i < PAYLOAD; i++)
				r->payload[i] = byte_at(i, 100, n);
			r->sum = payload_sum(r);
			Root->ring[slot] = oid;
			pmemobj_tx_add_range(Root_oid,
				offsetof(struct root, loop_count),
				2 * sizeof(uint64_t));
			Root->loop_sum += n;
			Root->loop_count = n + 1;
		} TX_ONABORT {
			failed = 1;
		} TX_END
		if (failed)
			DIE("loop: transaction %llu aborted",
				(unsigned long long)n);
		printf("%llu\n", (unsigned long long)n);
		fflush(stdout);
	}
}

static void
loop_check(void)
{
	uint64_t n = Root->loop_count;
	uint64_t sum = n * (n - 1) / 2;
	if (n == 0)
		DIE("loop: no transaction committed");
	if (Root->loop_sum != sum)
		DIE("loop: count %llu, sum %llu, expected sum %llu",
			(unsigned long long)n,
			(unsigned long long)Root->loop_sum,
			(unsigned long long)sum);
	uint64_t from = n > RING ? n - RING : 0;
	for (uint64_t i = from; i < n; i++) {
		PMEMoid oid = Root->ring[i % RING];
		struct record *r = pmemobj_direct(oid);
		if (!r)
			DIE("loop: record of transaction %llu missing",
				(unsigned long long)i);
		if (pmemobj_type_num(oid) != 100 || r->thread != 100 ||
				r->k != (uint32_t)i || r->version != i)
			DIE("loop: slot of transaction %llu holds type "
				"%llu, %u/%u version %llu",
				(unsigned long long)i,
				(unsigned long long)pmemobj_type_num(oid),
				r->thread, r->k,
				(unsigned long long)r->version);
		for (size_t j = 0; j < PAYLOAD; j++)
			if (r->payload[j] != byte_at(j, 100, i))
				DIE("loop: record %llu: payload byte %zu "
					"differs", (unsigned long long)i, j);
		if (r->sum != payload_sum(r))
			DIE("loop: record %llu: checksum differs",
				(unsigned long long)i);
	}
	/* no other live record of the loop's type */
	uint64_t live = 0;
	PMEMoid o;
	POBJ_FOREACH(Pop, o) {
		if (pmemobj_type_num(o) == 100)
			live++;
	}
	if (live != n - from)
		DIE("loop: %llu live records, expected %llu",
			(unsigned long long)live,
			(unsigned long long)(n - from));
	printf("loop %llu ok\n", (unsigned long long)n);
}

int
main(int argc, char *argv[])
{
	if (argc < 3)
		DIE("usage: pmemobj_tx <pool set> write|check|loop|loopcheck "
			"...");
	const char *mode = argv[2];
	Pop = pmemobj_open(argv[1], "test");
	if (!Pop)
		DIE("pmemobj_open %s", argv[1]);
	Root_oid = pmemobj_root(Pop, sizeof(struct root));
	Root = pmemobj_direct(Root_oid);
	if (!Root)
		DIE("pmemobj_root");

	if (strcmp(mode, "write") == 0 || strcmp(mode, "check") == 0) {
		if (argc != 5)
			DIE("usage: pmemobj_tx <pool set> %s <threads> "
				"<records per thread>", mode);
		unsigned nthreads = (unsigned)atoi(argv[3]);
		Per_thread = (unsigned)atoi(argv[4]);
		if (nthreads < 1 || nthreads > MAX_THREADS || Per_thread < 1 ||
				Per_thread > MAX_PER_THREAD)
			DIE("at most %d threads and %d records per thread",
				MAX_THREADS, MAX_PER_THREAD);
		if (strcmp(mode, "write") == 0) {
			pthread_t th[MAX_THREADS];
			for (unsigned t = 0; t < nthreads; t++)
				if (pthread_create(&th[t], NULL, writer,
						(void *)(uintptr_t)t))
					DIE("pthread_create");
			for (unsigned t = 0; t < nthreads; t++)
				pthread_join(th[t], NULL);
			check_records(nthreads);
			printf("wrote %u records\n", nthreads * Per_thread);
		} else {
			check_records(nthreads);
			printf("%u records ok\n", nthreads * Per_thread);
		}
	} else if (strcmp(mode, "loop") == 0 && argc == 4) {
		loop(strtoull(argv[3], NULL, 0));
	} else if (strcmp(mode, "loopcheck") == 0 && argc == 3) {
		loop_check();
	} else {
		DIE("unknown mode %s", mode);
	}
	pmemobj_close(Pop);
	return 0;
}
