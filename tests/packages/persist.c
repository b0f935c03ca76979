/*
 * persist.c -- a C program built against the installed librpmem-dev with
 * `cc $(pkg-config --cflags --libs librpmem)`: creates a pool in the pool set
 * file argv[1] on localhost, persists a pattern, closes, opens it again and
 * reads the pattern back through rpmem_read. tests/packages/check.sh runs it
 * with RPMEM_LAUNCH=local and the installed rpmemd.
 */
#include <librpmem.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define POOL_SIZE ((size_t)8 << 20)
#define OFFSET 4096
#define LENGTH 65536

static void
fail(const char *what)
{
	fprintf(stderr, "persist: %s failed (errno %d): %s\n", what, errno,
		rpmem_errormsg());
	exit(1);
}

int
main(int argc, char *argv[])
{
	if (argc != 2) {
		fprintf(stderr, "usage: persist POOLSET\n");
		return 2;
	}
	const char *msg = rpmem_check_version(RPMEM_MAJOR_VERSION,
			RPMEM_MINOR_VERSION);
	if (msg != NULL) {
		fprintf(stderr, "persist: %s\n", msg);
		return 1;
	}
	unsigned char *pool = mmap(NULL, POOL_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pool == MAP_FAILED)
		fail("mmap");

	struct rpmem_pool_attr attr;
	memset(&attr, 0, sizeof(attr));
	memcpy(attr.signature, "PKGTEST", 7);
	attr.major = 1;

	unsigned nlanes = 2;
	RPMEMpool *rpp = rpmem_create("localhost", argv[1], pool, POOL_SIZE,
			&nlanes, &attr);
	if (rpp == NULL)
		fail("rpmem_create");
	for (size_t i = 0; i < LENGTH; i++)
		pool[OFFSET + i] = (unsigned char)(i * 7 + 3);
	if (rpmem_persist(rpp, OFFSET, LENGTH, 0, 0))
		fail("rpmem_persist");
	if (rpmem_close(rpp))
		fail("rpmem_close");

	struct rpmem_pool_attr stored;
	nlanes = 1;
	rpp = rpmem_open("localhost", argv[1], pool, POOL_SIZE, &nlanes,
			&stored);
	if (rpp == NULL)
		fail("rpmem_open");
	if (memcmp(stored.signature, "PKGTEST", 7) != 0) {
		fprintf(stderr, "persist: the pool's signature is not ours\n");
		return 1;
	}
	unsigned char *back = malloc(LENGTH);
	if (back == NULL)
		fail("malloc");
	if (rpmem_read(rpp, back, OFFSET, LENGTH, 0))
		fail("rpmem_read");
	if (memcmp(back, pool + OFFSET, LENGTH) != 0) {
		fprintf(stderr, "persist: the bytes read back differ\n");
		return 1;
	}
	if (rpmem_close(rpp))
		fail("rpmem_close");
	free(back);
	printf("persist: created, persisted %d bytes, reopened and read them back\n",
		LENGTH);
	return 0;
}
