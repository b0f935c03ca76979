/*
 * noclose.c -- a program that exits without rpmem_close: exit is clean,
 * rpmemd ends its session (its stdin closes with the process), and the
 * pool opens again with every persisted byte.
 *
 * usage: noclose <pool set> <pool size> create|open
 */
#include <time.h>

#include "check.h"

#define HOST "localhost"

int
main(int argc, char *argv[])
{
	if (argc != 4)
		FAIL("usage: noclose <pool set> <pool size> create|open");
	const char *set = argv[1];
	size_t size = strtoull(argv[2], NULL, 0);
	char *pool = map_pool(size);
	struct rpmem_pool_attr attr = test_attr(11);
	unsigned n = 2;

	if (strcmp(argv[3], "create") == 0) {
		RPMEMpool *rpp = rpmem_create(HOST, set, pool, size, &n, &attr);
		if (!rpp)
			FAIL("rpmem_create");
		memset(pool + 4096, 0x6b, 3 * 4096);
		EXPECT_OK(rpmem_persist(rpp, 4096, 3 * 4096, 1, 0));
		printf("exiting without rpmem_close\n");
		return 0;
	}

	/* rpmemd of the first run may take a moment to end: EBUSY until then */
	RPMEMpool *rpp = NULL;
	for (int i = 0; i < 100 && !rpp; i++) {
		rpp = rpmem_open(HOST, set, pool, size, &n, NULL);
		if (!rpp && errno != EBUSY)
			FAIL("rpmem_open");
		if (!rpp)
			usleep(50000);
	}
	if (!rpp)
		FAIL("rpmem_open: still busy after 5 s");
	char buf[3 * 4096];
	EXPECT_OK(rpmem_read(rpp, buf, 4096, sizeof(buf), 0));
	for (size_t i = 0; i < sizeof(buf); i++)
		CHECK((unsigned char)buf[i] == 0x6b);
	EXPECT_OK(rpmem_close(rpp));
	printf("noclose: ok\n");
	return 0;
}
