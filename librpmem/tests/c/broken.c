/*
 * broken.c -- when rpmemd dies, the call that notices fails, and every
 * later call on the pool fails with the same errno (PMDK's rpp->error),
 * on any lane; rpmem_close still frees the handle and the library's
 * threads are gone.
 *
 * usage: broken <pool set> <pool size>
 */
#include <dirent.h>
#include <signal.h>
#include <sys/types.h>

#include "check.h"

#define HOST "localhost"

/* the child of this process whose command name is rpmemd */
static pid_t
find_rpmemd(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		FAIL("opendir /proc");
	struct dirent *e;
	pid_t found = 0;
	while ((e = readdir(d)) != NULL) {
		char path[300], stat[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(stat, 1, sizeof(stat) - 1, f);
		fclose(f);
		stat[n] = '\0';
		char *open = strchr(stat, '(');
		char *close = strrchr(stat, ')');
		if (!open || !close)
			continue;
		int ppid;
		char state;
		if (sscanf(close + 1, " %c %d", &state, &ppid) != 2)
			continue;
		if (ppid == getpid() &&
		    strncmp(open + 1, "rpmemd)", 7) == 0)
			found = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return found;
}

int
main(int argc, char *argv[])
{
	if (argc != 3)
		FAIL("usage: broken <pool set> <pool size>");
	const char *set = argv[1];
	size_t size = strtoull(argv[2], NULL, 0);
	int threads_before = count_threads();

	char *pool = map_pool(size);
	struct rpmem_pool_attr attr = test_attr(3);
	unsigned n = 2;
	RPMEMpool *rpp = rpmem_create(HOST, set, pool, size, &n, &attr);
	if (!rpp)
		FAIL("rpmem_create");
	CHECK(n == 2);
	memset(pool + 4096, 1, 4096);
	EXPECT_OK(rpmem_persist(rpp, 4096, 4096, 0, 0));

	pid_t pid = find_rpmemd();
	CHECK(pid > 0);
	CHECK(kill(pid, SIGKILL) == 0);

	/* the first call after the kill fails */
	errno = 0;
	int r = rpmem_persist(rpp, 4096, 4096, 0, 0);
	int first = errno;
	CHECK(r == -1);
	CHECK(first != 0 && first != EINVAL);
	printf("first failure: errno %d (%s): %s\n", first, strerror(first),
		rpmem_errormsg());

	/* every later call fails with the same errno, whatever the lane */
	char buf[64];
	EXPECT_FAIL(rpmem_persist(rpp, 8192, 64, 1, 0), first,
			"rpmem_persist: the pool is unusable");
	EXPECT_FAIL(rpmem_flush(rpp, 8192, 64, 1, 0), first,
			"rpmem_flush: the pool is unusable");
	EXPECT_FAIL(rpmem_drain(rpp, 1, 0), first,
			"rpmem_drain: the pool is unusable");
	EXPECT_FAIL(rpmem_deep_persist(rpp, 8192, 64, 1), first,
			"rpmem_deep_persist: the pool is unusable");
	EXPECT_FAIL(rpmem_read(rpp, buf, 8192, 64, 1), first,
			"rpmem_read: the pool is unusable");
	EXPECT_FAIL(rpmem_set_attr(rpp, &attr), first,
			"rpmem_set_attr: the pool is unusable");
	/* the message keeps the cause */
	CHECK(strstr(rpmem_errormsg(), "rpmemd") != NULL);
	/* PMDK checks rpp->error before the arguments: bad flags get the
	 * pool's error too */
	EXPECT_FAIL(rpmem_persist(rpp, 8192, 64, 0, 77), first,
			"rpmem_persist: the pool is unusable");

	/* close frees the handle whatever it answers */
	errno = 0;
	r = rpmem_close(rpp);
	printf("rpmem_close: %d (errno %d): %s\n", r, errno,
		r ? rpmem_errormsg() : "");
	CHECK(count_threads() == threads_before);

	printf("broken: ok\n");
	return 0;
}
