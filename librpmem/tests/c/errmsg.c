/*
 * errmsg.c -- rpmem_errormsg() says what failed and where, with rpmemd's
 * own words when rpmemd refused; it is per thread, and its pointer stays
 * the same.
 *
 * usage: errmsg <missing pool set> <pool size>
 */
#include <pthread.h>

#include "check.h"

#define HOST "localhost"

static void *
fail_here(void *arg)
{
	(void) arg;
	CHECK(rpmem_persist(NULL, 0, 0, 0, 0) == -1 && errno == EINVAL);
	CHECK(strncmp(rpmem_errormsg(), "rpmem_persist: ", 15) == 0);
	return NULL;
}

int
main(int argc, char *argv[])
{
	if (argc != 3)
		FAIL("usage: errmsg <missing pool set> <pool size>");
	const char *set = argv[1];
	size_t size = strtoull(argv[2], NULL, 0);
	char *pool = map_pool(size);
	const char *p = rpmem_errormsg();

	unsigned n = 1;
	EXPECT_NULL(rpmem_open(HOST, set, pool, size, &n, NULL), ENOENT);
	const char *m = rpmem_errormsg();
	printf("%s\n", m);
	CHECK(m == p);
	/* which call, which side, which pool set, rpmemd's status ... */
	CHECK(strncmp(m, "rpmem_open: rpmemd on localhost refused OPEN", 44) == 0);
	CHECK(strstr(m, set) != NULL);
	CHECK(strstr(m, "RPMEM_ERR_NOEXIST") != NULL);
	/* ... and rpmemd's own message */
	CHECK(strstr(m, "rpmemd: pool set file") != NULL);
	CHECK(strstr(m, "does not exist in the pool set directory") != NULL);

	char saved[8192];
	snprintf(saved, sizeof(saved), "%s", m);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, fail_here, NULL) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(strcmp(rpmem_errormsg(), saved) == 0);

	/* a failure on this side says so */
	n = 1;
	EXPECT_NULL(rpmem_create("-oProxyCommand=x", set, pool, size, &n,
			NULL), EINVAL);
	CHECK(strstr(rpmem_errormsg(), "invalid target") != NULL);
	CHECK(rpmem_errormsg() == p);

	/* rpmemd that cannot start: its errno and its words */
	n = 1;
	EXPECT_NULL(rpmem_open(HOST, set, pool, size, &n, NULL), ENOENT);

	printf("errmsg: ok\n");
	return 0;
}
