/*
 * pmemobj_tx.c -- a program written against Debian's libpmemobj-dev
 * (PMDK 1.12.1), built with `cc ... -lpmemobj` and run by
 * tests/packages/check.sh against the installed packages: libpmemobj loads
 * the installed librpmem.so.1 for the remote replica of the pool set, and
 * that starts the installed rpmemd through real ssh.
 *
 * usage:
 *   pmemobj_tx <pool set> write <n>
 *	creates the obj pool (layout "pkgtx") and runs n transactions, one
 *	after another: each allocates a record (pmemobj_tx_zalloc), fills it
 *	with bytes derived from its number, stores its oid in the root's table
 *	and increments the root's count (pmemobj_tx_add_range); prints
 *	"committed <n>"
 *   pmemobj_tx <pool set> check <n>
 *	opens the pool and checks the count and every record's number and
 *	bytes; prints "<n> transactions ok"
 *
 * Every failure prints what failed and exits with status 1.
 */
#include <libpmemobj.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TX 256
#define PAYLOAD 512

struct record {
	uint64_t number;
	unsigned char bytes[PAYLOAD];
};

struct root {
	uint64_t count;
	PMEMoid recs[MAX_TX];
};

static void
die(const char *what)
{
	fprintf(stderr, "pmemobj_tx: %s failed: %s\n", what, pmemobj_errormsg());
	exit(1);
}

static unsigned char
byte_of(uint64_t number, size_t i)
{
	return (unsigned char)(number * 131 + i * 7 + 1);
}

int
main(int argc, char *argv[])
{
	if (argc != 4) {
		fprintf(stderr, "usage: pmemobj_tx <pool set> write|check <n>\n");
		return 1;
	}
	char *end;
	unsigned long n = strtoul(argv[3], &end, 10);
	if (*end != '\0' || n == 0 || n > MAX_TX) {
		fprintf(stderr, "pmemobj_tx: n must be 1..%d, not '%s'\n", MAX_TX, argv[3]);
		return 1;
	}
	int write = strcmp(argv[2], "write") == 0;
	if (!write && strcmp(argv[2], "check") != 0) {
		fprintf(stderr, "pmemobj_tx: unknown mode '%s'\n", argv[2]);
		return 1;
	}

	/* A pool set with a remote replica: the size is the pool set's (0). */
	PMEMobjpool *pop = write ? pmemobj_create(argv[1], "pkgtx", 0, 0600)
				 : pmemobj_open(argv[1], "pkgtx");
	if (pop == NULL)
		die(write ? "pmemobj_create" : "pmemobj_open");
	PMEMoid root_oid = pmemobj_root(pop, sizeof(struct root));
	if (OID_IS_NULL(root_oid))
		die("pmemobj_root");
	struct root *root = pmemobj_direct(root_oid);

	if (write) {
		for (uint64_t t = 0; t < n; t++) {
			int failed = 0;
			TX_BEGIN(pop) {
				PMEMoid rec = pmemobj_tx_zalloc(sizeof(struct record), 1);
				struct record *r = pmemobj_direct(rec);
				r->number = t;
				for (size_t i = 0; i < PAYLOAD; i++)
					r->bytes[i] = byte_of(t, i);
				pmemobj_tx_add_range(root_oid, offsetof(struct root, recs) +
					t * sizeof(PMEMoid), sizeof(PMEMoid));
				root->recs[t] = rec;
				pmemobj_tx_add_range(root_oid, 0, sizeof(uint64_t));
				root->count = t + 1;
			} TX_ONABORT {
				failed = 1;
			} TX_END
			if (failed)
				die("a transaction");
		}
		printf("committed %lu\n", n);
	} else {
		if (root->count != n) {
			fprintf(stderr, "pmemobj_tx: count %llu, expected %lu\n",
				(unsigned long long)root->count, n);
			return 1;
		}
		for (uint64_t t = 0; t < n; t++) {
			struct record *r = pmemobj_direct(root->recs[t]);
			if (r == NULL || r->number != t) {
				fprintf(stderr, "pmemobj_tx: record %llu is missing\n",
					(unsigned long long)t);
				return 1;
			}
			for (size_t i = 0; i < PAYLOAD; i++) {
				if (r->bytes[i] != byte_of(t, i)) {
					fprintf(stderr, "pmemobj_tx: record %llu byte %zu differs\n",
						(unsigned long long)t, i);
					return 1;
				}
			}
		}
		printf("%lu transactions ok\n", n);
	}
	pmemobj_close(pop);
	return 0;
}
