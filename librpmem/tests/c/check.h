/*
 * check.h -- assertions of the C tests of librpmem.so.1.
 *
 * Every failed check prints where, what, errno and rpmem_errormsg() and
 * exits with status 1; a test program passes when it exits with 0.
 */
#ifndef RPMEM_TEST_CHECK_H
#define RPMEM_TEST_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <librpmem.h>

/* a program that loads the library with dlopen defines it as "" */
#ifndef CHECK_ERRORMSG
#define CHECK_ERRORMSG() rpmem_errormsg()
#endif

#define FAIL(...) do {\
	fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);\
	fprintf(stderr, __VA_ARGS__);\
	fprintf(stderr, " (errno %d: %s; rpmem_errormsg: \"%s\")\n",\
		errno, strerror(errno), CHECK_ERRORMSG());\
	exit(1);\
} while (0)

#define CHECK(cond) do {\
	if (!(cond))\
		FAIL("check failed: %s", #cond);\
} while (0)

/* an int-returning call must fail with -1 and errno `err`, and say so */
#define EXPECT_FAIL(call, err, prefix) do {\
	errno = 0;\
	int r_ = (call);\
	int e_ = errno;\
	if (r_ != -1 || e_ != (err))\
		FAIL("%s returned %d with errno %d, expected -1 with %s",\
			#call, r_, e_, #err);\
	if (strncmp(rpmem_errormsg(), prefix, strlen(prefix)) != 0)\
		FAIL("%s: the message does not start with \"%s\"", #call,\
			prefix);\
} while (0)

/* a pool-returning call must fail with NULL and errno `err` */
#define EXPECT_NULL(call, err) do {\
	errno = 0;\
	RPMEMpool *p_ = (call);\
	int e_ = errno;\
	if (p_ != NULL || e_ != (err))\
		FAIL("%s returned %p with errno %d, expected NULL with %s",\
			#call, (void *)p_, e_, #err);\
	if (rpmem_errormsg()[0] == '\0')\
		FAIL("%s: rpmem_errormsg() is empty", #call);\
} while (0)

#define EXPECT_OK(call) do {\
	errno = 0;\
	int r_ = (call);\
	if (r_ != 0)\
		FAIL("%s returned %d", #call, r_);\
} while (0)

/* page-aligned anonymous memory */
static inline void *
map_pool(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		FAIL("mmap of %zu bytes", size);
	return p;
}

/* threads of this process, from /proc/self/task */
static inline int
count_threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		FAIL("fopen /proc/self/status");
	char line[256];
	int n = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	if (n < 1)
		FAIL("no Threads: line in /proc/self/status");
	return n;
}

/* attributes for a pool with headers, distinct per seed */
static inline struct rpmem_pool_attr
test_attr(unsigned char seed)
{
	struct rpmem_pool_attr a;
	memset(&a, 0, sizeof(a));
	memcpy(a.signature, "RPMEMTST", RPMEM_POOL_HDR_SIG_LEN);
	a.major = 1;
	a.compat_features = seed;
	a.incompat_features = 0;
	a.ro_compat_features = (uint32_t)seed << 8;
	memset(a.poolset_uuid, seed, RPMEM_POOL_HDR_UUID_LEN);
	memset(a.uuid, seed + 1, RPMEM_POOL_HDR_UUID_LEN);
	memset(a.next_uuid, seed + 2, RPMEM_POOL_HDR_UUID_LEN);
	memset(a.prev_uuid, seed + 3, RPMEM_POOL_HDR_UUID_LEN);
	memset(a.user_flags, seed + 4, RPMEM_POOL_USER_FLAGS_LEN);
	return a;
}

#endif
