/*
 * dlopen.c -- load librpmem.so.1 as libpmemobj does (dlopen RTLD_NOW,
 * dlsym), create, persist, read back, close, dlclose; twice; then exit.
 * The library must leave no thread behind and the process must exit
 * cleanly (it is not linked with -lrpmem; LD_LIBRARY_PATH finds it).
 *
 * usage: dlopen <pool set> <pool size>
 */
#define _GNU_SOURCE /* dlvsym */
#include <dlfcn.h>

/* not linked with the library: check.h must not call it */
#define CHECK_ERRORMSG() ""
#include "check.h"

#define HOST "localhost"

static const char *const Names[] = {
	"rpmem_create", "rpmem_open", "rpmem_set_attr", "rpmem_close",
	"rpmem_remove", "rpmem_flush", "rpmem_drain", "rpmem_persist",
	"rpmem_deep_persist", "rpmem_read", "rpmem_check_version",
	"rpmem_errormsg",
};

static void
cycle(const char *set, size_t size, int create)
{
	void *h = dlopen("librpmem.so.1", RTLD_NOW);
	if (!h) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		exit(1);
	}
	for (size_t i = 0; i < sizeof(Names) / sizeof(Names[0]); i++) {
		void *f = dlsym(h, Names[i]);
		void *v = dlvsym(h, Names[i], "LIBRPMEM_1.0");
		if (!f || f != v) {
			fprintf(stderr, "%s: dlsym %p, dlvsym LIBRPMEM_1.0 %p\n",
				Names[i], f, v);
			exit(1);
		}
	}
	/* nothing else is exported */
	CHECK(dlsym(h, "rust_begin_unwind") == NULL);
	CHECK(dlsym(h, "rust_eh_personality") == NULL);

	RPMEMpool *(*Create)(const char *, const char *, void *, size_t,
			unsigned *, const struct rpmem_pool_attr *) =
			(RPMEMpool *(*)(const char *, const char *, void *,
			size_t, unsigned *, const struct rpmem_pool_attr *))
			dlsym(h, "rpmem_create");
	RPMEMpool *(*Open)(const char *, const char *, void *, size_t,
			unsigned *, struct rpmem_pool_attr *) =
			(RPMEMpool *(*)(const char *, const char *, void *,
			size_t, unsigned *, struct rpmem_pool_attr *))
			dlsym(h, "rpmem_open");
	int (*Persist)(RPMEMpool *, size_t, size_t, unsigned, unsigned) =
			(int (*)(RPMEMpool *, size_t, size_t, unsigned,
			unsigned))dlsym(h, "rpmem_persist");
	int (*Read)(RPMEMpool *, void *, size_t, size_t, unsigned) =
			(int (*)(RPMEMpool *, void *, size_t, size_t,
			unsigned))dlsym(h, "rpmem_read");
	int (*Close)(RPMEMpool *) = (int (*)(RPMEMpool *))
			dlsym(h, "rpmem_close");
	const char *(*Errormsg)(void) = (const char *(*)(void))
			dlsym(h, "rpmem_errormsg");

	char *pool = map_pool(size);
	struct rpmem_pool_attr attr = test_attr(5);
	struct rpmem_pool_attr got;
	unsigned n = 2;
	RPMEMpool *rpp = create ?
		Create(HOST, set, pool, size, &n, &attr) :
		Open(HOST, set, pool, size, &n, &got);
	if (!rpp) {
		fprintf(stderr, "%s: %s\n", create ? "create" : "open",
			Errormsg());
		exit(1);
	}
	if (!create)
		CHECK(memcmp(&got, &attr, sizeof(got)) == 0);
	memset(pool + 4096, create ? 0x11 : 0x22, 65536);
	if (Persist(rpp, 4096, 65536, 1, 0)) {
		fprintf(stderr, "persist: %s\n", Errormsg());
		exit(1);
	}
	char buf[65536];
	if (Read(rpp, buf, 4096, sizeof(buf), 0)) {
		fprintf(stderr, "read: %s\n", Errormsg());
		exit(1);
	}
	CHECK(memcmp(buf, pool + 4096, sizeof(buf)) == 0);
	if (Close(rpp)) {
		fprintf(stderr, "close: %s\n", Errormsg());
		exit(1);
	}
	munmap(pool, size);
	CHECK(dlclose(h) == 0);
}

int
main(int argc, char *argv[])
{
	if (argc != 3)
		FAIL("usage: dlopen <pool set> <pool size>");
	size_t size = strtoull(argv[2], NULL, 0);
	int threads_before = count_threads();
	cycle(argv[1], size, 1);
	CHECK(count_threads() == threads_before);
	cycle(argv[1], size, 0);
	CHECK(count_threads() == threads_before);
	/* 1 when the library was unmapped by dlclose, 0 when still mapped */
	printf("unloaded %d\n",
		dlopen("librpmem.so.1", RTLD_NOW | RTLD_NOLOAD) == NULL);
	printf("dlopen: ok\n");
	return 0;
}
