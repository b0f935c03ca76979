/*
 * pmemobj_mt.c -- Debian's libpmemobj on a pool set with a remote replica,
 * 8 threads at once: each allocates objects (libpmemobj persists the heap
 * and each object through its own lanes, i.e. concurrent rpmem_persist
 * calls on several lanes) and records them in the root object.
 *
 * usage: pmemobj_mt <pool set> write|check
 * "check" opens the pool and verifies every recorded object.
 */
#include <libpmemobj.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 8
#define PER_THREAD 40
#define OBJ_SIZE 3000

struct root {
	PMEMoid objs[NTHREADS][PER_THREAD];
};

static PMEMobjpool *Pop;
static struct root *Root;

static unsigned char
byte_at(size_t i, unsigned t, unsigned k)
{
	return (unsigned char)(i * 7 + t * 31 + k * 13);
}

struct ctor_arg {
	unsigned t, k;
};

static int
ctor(PMEMobjpool *pop, void *ptr, void *arg)
{
	struct ctor_arg *a = arg;
	unsigned char *p = ptr;
	for (size_t i = 0; i < OBJ_SIZE; i++)
		p[i] = byte_at(i, a->t, a->k);
	pmemobj_persist(pop, p, OBJ_SIZE);
	return 0;
}

static void *
work(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	for (unsigned k = 0; k < PER_THREAD; k++) {
		struct ctor_arg a = { t, k };
		/* the allocation persists the new oid in the root */
		if (pmemobj_alloc(Pop, &Root->objs[t][k], OBJ_SIZE, 1, ctor,
				&a)) {
			fprintf(stderr, "thread %u: pmemobj_alloc: %s\n", t,
				pmemobj_errormsg());
			exit(1);
		}
	}
	return NULL;
}

int
main(int argc, char *argv[])
{
	if (argc != 3) {
		fprintf(stderr, "usage: pmemobj_mt <pool set> write|check\n");
		return 1;
	}
	Pop = pmemobj_open(argv[1], "test");
	if (!Pop) {
		fprintf(stderr, "pmemobj_open: %s\n", pmemobj_errormsg());
		return 1;
	}
	Root = pmemobj_direct(pmemobj_root(Pop, sizeof(struct root)));
	if (!Root) {
		fprintf(stderr, "pmemobj_root: %s\n", pmemobj_errormsg());
		return 1;
	}
	if (strcmp(argv[2], "write") == 0) {
		pthread_t th[NTHREADS];
		for (unsigned t = 0; t < NTHREADS; t++)
			if (pthread_create(&th[t], NULL, work,
					(void *)(uintptr_t)t))
				return 1;
		for (unsigned t = 0; t < NTHREADS; t++)
			pthread_join(th[t], NULL);
	}
	for (unsigned t = 0; t < NTHREADS; t++)
		for (unsigned k = 0; k < PER_THREAD; k++) {
			unsigned char *p = pmemobj_direct(Root->objs[t][k]);
			if (!p) {
				fprintf(stderr, "object %u/%u missing\n", t, k);
				return 1;
			}
			for (size_t i = 0; i < OBJ_SIZE; i++)
				if (p[i] != byte_at(i, t, k)) {
					fprintf(stderr, "object %u/%u byte %zu"
						" differs\n", t, k, i);
					return 1;
				}
		}
	pmemobj_close(Pop);
	printf("%d objects ok\n", NTHREADS * PER_THREAD);
	return 0;
}
