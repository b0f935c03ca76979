/*
 * pmemobj.c -- Debian's libpmemobj (PMDK 1.12.1) on a pool set with a
 * remote replica, through our librpmem.so.1: opens the pool, writes a
 * root object of 1 MiB and persists it (libpmemobj replicates it with
 * rpmem_persist), closes, opens again and checks the bytes.
 *
 * usage: pmemobj <pool set> <seed> [check]
 * prints: root <offset> <size>
 * With "check" it only opens the pool and checks the root object's bytes.
 */
#include <libpmemobj.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOT_SIZE (1 << 20)

static unsigned char
byte_at(size_t i, unsigned seed)
{
	return (unsigned char)((i * 131 + seed * 7 + (i >> 9)) & 0xff);
}

int
main(int argc, char *argv[])
{
	if (argc != 3 && !(argc == 4 && strcmp(argv[3], "check") == 0)) {
		fprintf(stderr, "usage: pmemobj <pool set> <seed> [check]\n");
		return 1;
	}
	unsigned seed = (unsigned)atoi(argv[2]);
	PMEMobjpool *pop;
	if (argc == 4)
		goto check;
	pop = pmemobj_open(argv[1], "test");
	if (!pop) {
		fprintf(stderr, "pmemobj_open: %s\n", pmemobj_errormsg());
		return 1;
	}
	PMEMoid root = pmemobj_root(pop, ROOT_SIZE);
	if (OID_IS_NULL(root)) {
		fprintf(stderr, "pmemobj_root: %s\n", pmemobj_errormsg());
		return 1;
	}
	unsigned char *p = pmemobj_direct(root);
	for (size_t i = 0; i < ROOT_SIZE; i++)
		p[i] = byte_at(i, seed);
	pmemobj_persist(pop, p, ROOT_SIZE);
	printf("root %llu %d\n", (unsigned long long)root.off, ROOT_SIZE);
	pmemobj_close(pop);

check:
	pop = pmemobj_open(argv[1], "test");
	if (!pop) {
		fprintf(stderr, "pmemobj_open again: %s\n",
			pmemobj_errormsg());
		return 1;
	}
	p = pmemobj_direct(pmemobj_root(pop, ROOT_SIZE));
	for (size_t i = 0; i < ROOT_SIZE; i++)
		if (p[i] != byte_at(i, seed)) {
			fprintf(stderr, "byte %zu differs after reopening\n",
				i);
			return 1;
		}
	pmemobj_close(pop);
	return 0;
}
