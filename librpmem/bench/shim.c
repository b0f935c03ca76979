/*
 * shim.c -- benchmark helper: a librpmem.so.1 that counts rpmem_persist
 * calls and forwards every call to the real library, whose path is in
 * RPMEM_SHIM_REAL. libpmemobj loads it with dlopen("librpmem.so.1") when
 * it comes first on LD_LIBRARY_PATH; tx.c reads the count with
 * rpmem_shim_persists(). It forwards the eight functions libpmemobj and
 * libpmempool use.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <librpmem.h>

static atomic_llong persist_calls;
static void *real;

static void *
fn(const char *name)
{
	if (!real) {
		const char *path = getenv("RPMEM_SHIM_REAL");
		if (!path || !(real = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
			fprintf(stderr, "rpmem shim: cannot load %s: %s\n",
				path ? path : "(RPMEM_SHIM_REAL unset)",
				dlerror());
			abort();
		}
	}
	void *f = dlsym(real, name);
	if (!f) {
		fprintf(stderr, "rpmem shim: %s: %s\n", name, dlerror());
		abort();
	}
	return f;
}

long long
rpmem_shim_persists(void)
{
	return atomic_load(&persist_calls);
}

RPMEMpool *
rpmem_create(const char *target, const char *pool_set_name, void *pool_addr,
	size_t pool_size, unsigned *nlanes,
	const struct rpmem_pool_attr *create_attr)
{
	RPMEMpool *(*f)(const char *, const char *, void *, size_t,
		unsigned *, const struct rpmem_pool_attr *) =
		fn("rpmem_create");
	return f(target, pool_set_name, pool_addr, pool_size, nlanes,
		create_attr);
}

RPMEMpool *
rpmem_open(const char *target, const char *pool_set_name, void *pool_addr,
	size_t pool_size, unsigned *nlanes, struct rpmem_pool_attr *open_attr)
{
	RPMEMpool *(*f)(const char *, const char *, void *, size_t,
		unsigned *, struct rpmem_pool_attr *) = fn("rpmem_open");
	return f(target, pool_set_name, pool_addr, pool_size, nlanes,
		open_attr);
}

int
rpmem_set_attr(RPMEMpool *rpp, const struct rpmem_pool_attr *attr)
{
	int (*f)(RPMEMpool *, const struct rpmem_pool_attr *) =
		fn("rpmem_set_attr");
	return f(rpp, attr);
}

int
rpmem_close(RPMEMpool *rpp)
{
	int (*f)(RPMEMpool *) = fn("rpmem_close");
	return f(rpp);
}

int
rpmem_persist(RPMEMpool *rpp, size_t offset, size_t length, unsigned lane,
	unsigned flags)
{
	atomic_fetch_add(&persist_calls, 1);
	int (*f)(RPMEMpool *, size_t, size_t, unsigned, unsigned) =
		fn("rpmem_persist");
	return f(rpp, offset, length, lane, flags);
}

int
rpmem_deep_persist(RPMEMpool *rpp, size_t offset, size_t length,
	unsigned lane)
{
	atomic_fetch_add(&persist_calls, 1);
	int (*f)(RPMEMpool *, size_t, size_t, unsigned) =
		fn("rpmem_deep_persist");
	return f(rpp, offset, length, lane);
}

int
rpmem_read(RPMEMpool *rpp, void *buff, size_t offset, size_t length,
	unsigned lane)
{
	int (*f)(RPMEMpool *, void *, size_t, size_t, unsigned) =
		fn("rpmem_read");
	return f(rpp, buff, offset, length, lane);
}

int
rpmem_remove(const char *target, const char *pool_set_name, int flags)
{
	int (*f)(const char *, const char *, int) = fn("rpmem_remove");
	return f(target, pool_set_name, flags);
}
