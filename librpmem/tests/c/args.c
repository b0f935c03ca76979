/*
 * args.c -- PMDK's argument rules and errno values of every function.
 *
 * usage: args <headers.set> <nohdrs.set> <pool size>
 * Run with RPMEM_MAX_NLANES=3 (4 lanes are asked for).
 */
#include <limits.h>
#include <stdint.h>

#include "check.h"

#define HOST "localhost"

static void
create_open_rules(const char *set, size_t size)
{
	char *addr = map_pool(size);
	struct rpmem_pool_attr attr = test_attr(1);
	unsigned n = 4;

	EXPECT_NULL(rpmem_create(HOST, set, NULL, size, &n, &attr), EINVAL);
	CHECK(strncmp(rpmem_errormsg(), "rpmem_create: ", 14) == 0);
	EXPECT_NULL(rpmem_create(HOST, set, addr + 1, size - 4096, &n, &attr),
			EINVAL);
	EXPECT_NULL(rpmem_create(HOST, set, addr + 2048, size - 4096, &n,
			&attr), EINVAL);
	EXPECT_NULL(rpmem_create(HOST, set, addr, size - 1, &n, &attr), EINVAL);
	EXPECT_NULL(rpmem_create(HOST, set, addr, 100, &n, &attr), EINVAL);
	EXPECT_NULL(rpmem_create(HOST, set, addr, 0, &n, &attr), EINVAL);
	EXPECT_NULL(rpmem_create(HOST, set, addr, size, NULL, &attr), EINVAL);
	n = 0;
	EXPECT_NULL(rpmem_create(HOST, set, addr, size, &n, &attr), EINVAL);
	CHECK(n == 0);
	n = 4;
	EXPECT_NULL(rpmem_create(NULL, set, addr, size, &n, &attr), EINVAL);
	EXPECT_NULL(rpmem_create(HOST, NULL, addr, size, &n, &attr), EINVAL);
	EXPECT_NULL(rpmem_create("", set, addr, size, &n, &attr), EINVAL);
	CHECK(n == 4);

	struct rpmem_pool_attr out;
	EXPECT_NULL(rpmem_open(HOST, set, NULL, size, &n, &out), EINVAL);
	CHECK(strncmp(rpmem_errormsg(), "rpmem_open: ", 12) == 0);
	EXPECT_NULL(rpmem_open(HOST, set, addr + 8, size - 4096, &n, &out),
			EINVAL);
	EXPECT_NULL(rpmem_open(HOST, set, addr, size - 8, &n, &out), EINVAL);
	EXPECT_NULL(rpmem_open(HOST, set, addr, 0, &n, &out), EINVAL);
	EXPECT_NULL(rpmem_open(HOST, set, addr, size, NULL, &out), EINVAL);
	n = 0;
	EXPECT_NULL(rpmem_open(HOST, set, addr, size, &n, &out), EINVAL);
	n = 4;
	EXPECT_NULL(rpmem_open(NULL, set, addr, size, &n, &out), EINVAL);
	EXPECT_NULL(rpmem_open(HOST, NULL, addr, size, &n, &out), EINVAL);
	munmap(addr, size);
}

static void
data_rules(RPMEMpool *rpp, char *addr, size_t size, unsigned n)
{
	/* rpmem_persist */
	EXPECT_FAIL(rpmem_persist(rpp, 4096, 64, 0, 2), EINVAL,
			"rpmem_persist: invalid flags (0x2)");
	EXPECT_FAIL(rpmem_persist(rpp, 4096, 64, 0, ~0U), EINVAL,
			"rpmem_persist: ");
	EXPECT_FAIL(rpmem_persist(rpp, 0, 64, 0, 0), EINVAL, "rpmem_persist: ");
	EXPECT_FAIL(rpmem_persist(rpp, 4095, 1, 0, 0), EINVAL,
			"rpmem_persist: offset (4095)");
	EXPECT_FAIL(rpmem_persist(rpp, 4096, 64, n, 0), EINVAL,
			"rpmem_persist: lane");
	EXPECT_FAIL(rpmem_persist(rpp, 4096, 64, UINT_MAX, 0), EINVAL,
			"rpmem_persist: ");
	EXPECT_FAIL(rpmem_persist(rpp, size - 8, 16, 0, 0), EINVAL,
			"rpmem_persist: ");
	EXPECT_FAIL(rpmem_persist(rpp, size, 0, 0, 0), EINVAL,
			"rpmem_persist: ");
	EXPECT_FAIL(rpmem_persist(rpp, 8192, SIZE_MAX, 0, 0), EINVAL,
			"rpmem_persist: ");
	EXPECT_FAIL(rpmem_persist(NULL, 4096, 64, 0, 0), EINVAL,
			"rpmem_persist: ");

	/* rpmem_flush and rpmem_drain */
	EXPECT_FAIL(rpmem_flush(rpp, 4096, 64, 0, 2), EINVAL,
			"rpmem_flush: invalid flags");
	EXPECT_FAIL(rpmem_flush(rpp, 100, 64, 0, 0), EINVAL, "rpmem_flush: ");
	EXPECT_FAIL(rpmem_flush(rpp, 4096, 64, n, 0), EINVAL, "rpmem_flush: ");
	EXPECT_FAIL(rpmem_flush(rpp, size - 1, 2, 0, 0), EINVAL,
			"rpmem_flush: ");
	EXPECT_FAIL(rpmem_flush(NULL, 4096, 64, 0, 0), EINVAL, "rpmem_flush: ");
	EXPECT_FAIL(rpmem_drain(rpp, 0, 1), EINVAL,
			"rpmem_drain: invalid flags (0x1)");
	EXPECT_FAIL(rpmem_drain(rpp, n, 0), EINVAL, "rpmem_drain: ");
	EXPECT_FAIL(rpmem_drain(NULL, 0, 0), EINVAL, "rpmem_drain: ");

	/* rpmem_deep_persist */
	EXPECT_FAIL(rpmem_deep_persist(rpp, 0, 64, 0), EINVAL,
			"rpmem_deep_persist: ");
	EXPECT_FAIL(rpmem_deep_persist(rpp, 4096, 64, n), EINVAL,
			"rpmem_deep_persist: ");
	EXPECT_FAIL(rpmem_deep_persist(rpp, size - 4096, 8192, 0), EINVAL,
			"rpmem_deep_persist: ");
	EXPECT_FAIL(rpmem_deep_persist(NULL, 4096, 64, 0), EINVAL,
			"rpmem_deep_persist: ");

	/* rpmem_read */
	char buf[8192];
	EXPECT_FAIL(rpmem_read(rpp, buf, 4096, 64, n), EINVAL, "rpmem_read: ");
	EXPECT_FAIL(rpmem_read(rpp, NULL, 4096, 64, 0), EINVAL, "rpmem_read: ");
	EXPECT_FAIL(rpmem_read(rpp, buf, size - 8, 16, 0), EINVAL,
			"rpmem_read: ");
	EXPECT_FAIL(rpmem_read(NULL, buf, 4096, 64, 0), EINVAL, "rpmem_read: ");

	/* rpmem_set_attr */
	EXPECT_FAIL(rpmem_set_attr(NULL, NULL), EINVAL, "rpmem_set_attr: ");

	/* every refusal left the pool usable */
	memset(addr + 4096, 0xab, 8192);
	EXPECT_OK(rpmem_persist(rpp, 4096, 8192, 0, 0));
	memset(addr + 65536, 0xcd, 4096);
	EXPECT_OK(rpmem_flush(rpp, 65536, 4096, n - 1, RPMEM_FLUSH_RELAXED));
	EXPECT_OK(rpmem_drain(rpp, n - 1, 0));
	memset(addr + size - 4096, 0xef, 4096);
	EXPECT_OK(rpmem_deep_persist(rpp, size - 4096, 4096, 0));
	EXPECT_OK(rpmem_persist(rpp, 8192, 0, 0, 0));
	EXPECT_OK(rpmem_flush(rpp, 8192, 0, 0, 0));
	EXPECT_OK(rpmem_deep_persist(rpp, 8192, 0, 0));
	EXPECT_OK(rpmem_read(rpp, NULL, 4096, 0, 0));

	memset(buf, 0, sizeof(buf));
	EXPECT_OK(rpmem_read(rpp, buf, 4096, 8192, 1));
	for (size_t i = 0; i < 8192; i++)
		CHECK((unsigned char)buf[i] == 0xab);
	EXPECT_OK(rpmem_read(rpp, buf, 65536, 4096, 0));
	for (size_t i = 0; i < 4096; i++)
		CHECK((unsigned char)buf[i] == 0xcd);
	EXPECT_OK(rpmem_read(rpp, buf, size - 4096, 4096, 0));
	for (size_t i = 0; i < 4096; i++)
		CHECK((unsigned char)buf[i] == 0xef);
	/* reading the header is allowed: it starts with the signature */
	EXPECT_OK(rpmem_read(rpp, buf, 0, 4096, 0));
	CHECK(memcmp(buf, "RPMEMTST", 8) == 0);
}

int
main(int argc, char *argv[])
{
	if (argc != 4)
		FAIL("usage: args <headers.set> <nohdrs.set> <pool size>");
	const char *hdr = argv[1];
	const char *nohdrs = argv[2];
	size_t size = strtoull(argv[3], NULL, 0);

	create_open_rules(hdr, size);

	char *addr = map_pool(size);
	struct rpmem_pool_attr attr = test_attr(1);
	unsigned n = 4;
	RPMEMpool *rpp = rpmem_create(HOST, hdr, addr, size, &n, &attr);
	if (!rpp)
		FAIL("rpmem_create %s", hdr);
	/* RPMEM_MAX_NLANES=3 */
	CHECK(n == 3);

	/* a pool in use cannot be opened again: EBUSY */
	char *addr2 = map_pool(2 * size);
	unsigned n2 = 1;
	EXPECT_NULL(rpmem_open(HOST, hdr, addr2, size, &n2, NULL), EBUSY);
	CHECK(strstr(rpmem_errormsg(), "rpmem_open: ") == rpmem_errormsg());

	data_rules(rpp, addr, size, n);
	EXPECT_OK(rpmem_close(rpp));
	EXPECT_FAIL(rpmem_close(NULL), EINVAL, "rpmem_close: ");

	/* it exists now: EEXIST */
	EXPECT_NULL(rpmem_create(HOST, hdr, addr, size, &n, &attr), EEXIST);
	/* more than the pool holds: EFBIG */
	n2 = 1;
	EXPECT_NULL(rpmem_open(HOST, hdr, addr2, 2 * size, &n2, NULL), EFBIG);

	/* without headers (NULL or zeroed attributes) offset 0 is writable */
	struct rpmem_pool_attr zero;
	memset(&zero, 0, sizeof(zero));
	n = 2;
	rpp = rpmem_create(HOST, nohdrs, addr, size, &n, &zero);
	if (!rpp)
		FAIL("rpmem_create %s", nohdrs);
	memset(addr, 0x5a, 4096);
	EXPECT_OK(rpmem_persist(rpp, 0, 4096, 0, 0));
	EXPECT_OK(rpmem_flush(rpp, 0, 64, 0, 0));
	EXPECT_OK(rpmem_drain(rpp, 0, 0));
	/* PMDK's rule: deep persist below 4096 is refused even so */
	EXPECT_FAIL(rpmem_deep_persist(rpp, 0, 64, 0), EINVAL,
			"rpmem_deep_persist: ");
	EXPECT_OK(rpmem_close(rpp));
	n = 1;
	struct rpmem_pool_attr got;
	memset(&got, 0xff, sizeof(got));
	rpp = rpmem_open(HOST, nohdrs, addr2, size, &n, &got);
	if (!rpp)
		FAIL("rpmem_open %s", nohdrs);
	CHECK(memcmp(&got, &zero, sizeof(got)) == 0);
	CHECK(n == 1);
	char buf[4096];
	EXPECT_OK(rpmem_read(rpp, buf, 0, sizeof(buf), 0));
	for (size_t i = 0; i < sizeof(buf); i++)
		CHECK((unsigned char)buf[i] == 0x5a);
	EXPECT_OK(rpmem_close(rpp));

	/* attributes for a NOHDRS pool set: the pool set is invalid */
	EXPECT_OK(rpmem_remove(HOST, nohdrs, 0));
	n = 1;
	EXPECT_NULL(rpmem_create(HOST, nohdrs, addr, size, &n, &attr), EINVAL);

	/* rpmem_remove */
	EXPECT_FAIL(rpmem_remove(HOST, hdr, 4), EINVAL,
			"rpmem_remove: invalid flags");
	EXPECT_FAIL(rpmem_remove(HOST, hdr, -1), EINVAL, "rpmem_remove: ");
	EXPECT_FAIL(rpmem_remove(NULL, hdr, 0), EINVAL, "rpmem_remove: ");
	EXPECT_FAIL(rpmem_remove(HOST, NULL, 0), EINVAL, "rpmem_remove: ");
	EXPECT_OK(rpmem_remove(HOST, hdr, RPMEM_REMOVE_FORCE));
	/* the pool is gone, the pool set file stays: create works again */
	n = 1;
	rpp = rpmem_create(HOST, hdr, addr, size, &n, &attr);
	if (!rpp)
		FAIL("rpmem_create %s after rpmem_remove", hdr);
	EXPECT_OK(rpmem_close(rpp));
	EXPECT_OK(rpmem_remove(HOST, hdr, RPMEM_REMOVE_POOL_SET));
	errno = 0;
	int r = rpmem_remove(HOST, hdr, 0);
	CHECK(r == -1 && errno != 0);
	CHECK(strstr(rpmem_errormsg(), hdr) != NULL);

	printf("args: ok\n");
	return 0;
}
