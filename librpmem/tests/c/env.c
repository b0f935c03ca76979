/*
 * env.c -- the environment is read at each call: PMDK's provider switches
 * map onto our transports, bad values fail the call with EINVAL naming the
 * variable, RPMEM_MAX_NLANES caps *nlanes.
 *
 * usage: env <NOHDRS pool set> <pool size>
 */
#include "check.h"

#define HOST "localhost"

static RPMEMpool *
try_create(const char *set, char *pool, size_t size, unsigned *n)
{
	*n = 4;
	return rpmem_create(HOST, set, pool, size, n, NULL);
}

int
main(int argc, char *argv[])
{
	if (argc != 3)
		FAIL("usage: env <pool set> <pool size>");
	const char *set = argv[1];
	size_t size = strtoull(argv[2], NULL, 0);
	char *pool = map_pool(size);
	unsigned n;

	/* invalid values: EINVAL, the message names the variable */
	const char *bad[][2] = {
		{ "RPMEM_ENABLE_VERBS", "yes" },
		{ "RPMEM_ENABLE_SOCKETS", "1x" },
		{ "RPMEM_MAX_NLANES", "many" },
		{ "RPMEM_WORK_QUEUE_SIZE", "0" },
		{ "RPMEM_LAUNCH", "rsh" },
		{ "RPMEM_PROVIDER", "fabric" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *old = getenv(bad[i][0]);
		char *saved = old ? strdup(old) : NULL;
		CHECK(setenv(bad[i][0], bad[i][1], 1) == 0);
		EXPECT_NULL(try_create(set, pool, size, &n), EINVAL);
		CHECK(strstr(rpmem_errormsg(), bad[i][0]) != NULL);
		EXPECT_FAIL(rpmem_remove(HOST, set, 0), EINVAL,
				"rpmem_remove: environment variable");
		if (saved)
			CHECK(setenv(bad[i][0], saved, 1) == 0);
		else
			CHECK(unsetenv(bad[i][0]) == 0);
		free(saved);
	}

	/* sockets enabled, verbs disabled: our TCP path */
	CHECK(setenv("RPMEM_ENABLE_SOCKETS", "1", 1) == 0);
	CHECK(setenv("RPMEM_ENABLE_VERBS", "0", 1) == 0);
	CHECK(setenv("RPMEM_MAX_NLANES", "3", 1) == 0);
	RPMEMpool *rpp = try_create(set, pool, size, &n);
	if (!rpp)
		FAIL("rpmem_create over TCP");
	CHECK(n == 3);
	memset(pool, 0x42, 4096);
	EXPECT_OK(rpmem_persist(rpp, 0, 4096, 2, 0));
	EXPECT_OK(rpmem_close(rpp));
	CHECK(unsetenv("RPMEM_MAX_NLANES") == 0);

	/* verbs enabled: PMDK's choice when both are; this build (without
	 * the cargo feature verbs) or this host (no RDMA device) refuses */
	CHECK(setenv("RPMEM_ENABLE_VERBS", "1", 1) == 0);
	errno = 0;
	rpp = rpmem_open(HOST, set, pool, size, &n, NULL);
	printf("RPMEM_ENABLE_VERBS=1: %p errno %d: %s\n", (void *)rpp, errno,
		rpmem_errormsg());
	CHECK(rpp == NULL && errno != 0);
	CHECK(strstr(rpmem_errormsg(), "verbs") != NULL ||
		strstr(rpmem_errormsg(), "VERBS") != NULL);
	/* RPMEM_PROVIDER wins */
	CHECK(setenv("RPMEM_PROVIDER", "tcp", 1) == 0);
	n = 1;
	rpp = rpmem_open(HOST, set, pool, size, &n, NULL);
	if (!rpp)
		FAIL("rpmem_open with RPMEM_PROVIDER=tcp");
	char buf[4096];
	EXPECT_OK(rpmem_read(rpp, buf, 0, sizeof(buf), 0));
	for (size_t i = 0; i < sizeof(buf); i++)
		CHECK(buf[i] == 0x42);
	EXPECT_OK(rpmem_close(rpp));

	printf("env: ok\n");
	return 0;
}
