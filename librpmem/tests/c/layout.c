/*
 * layout.c -- the header's constants and struct rpmem_pool_attr's layout
 * are PMDK 1.12.1's; rpmem_check_version and rpmem_errormsg need no pool.
 */
#include <stddef.h>
#include <pthread.h>

#include "check.h"

_Static_assert(sizeof(struct rpmem_pool_attr) == 104, "size");
_Static_assert(offsetof(struct rpmem_pool_attr, signature) == 0, "signature");
_Static_assert(offsetof(struct rpmem_pool_attr, major) == 8, "major");
_Static_assert(offsetof(struct rpmem_pool_attr, compat_features) == 12, "compat");
_Static_assert(offsetof(struct rpmem_pool_attr, incompat_features) == 16, "incompat");
_Static_assert(offsetof(struct rpmem_pool_attr, ro_compat_features) == 20, "ro_compat");
_Static_assert(offsetof(struct rpmem_pool_attr, poolset_uuid) == 24, "poolset_uuid");
_Static_assert(offsetof(struct rpmem_pool_attr, uuid) == 40, "uuid");
_Static_assert(offsetof(struct rpmem_pool_attr, next_uuid) == 56, "next_uuid");
_Static_assert(offsetof(struct rpmem_pool_attr, prev_uuid) == 72, "prev_uuid");
_Static_assert(offsetof(struct rpmem_pool_attr, user_flags) == 88, "user_flags");

static void *
other_thread(void *arg)
{
	(void) arg;
	/* a failure on this thread leaves the main thread's message alone */
	const char *m = rpmem_check_version(7, 0);
	CHECK(m != NULL && strstr(m, "need 7") != NULL);
	CHECK(strcmp(rpmem_errormsg(), m) == 0);
	return NULL;
}

int
main(void)
{
	/* the same checks at run time, printed for the test log */
	printf("sizeof %zu, offsets %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n",
		sizeof(struct rpmem_pool_attr),
		offsetof(struct rpmem_pool_attr, signature),
		offsetof(struct rpmem_pool_attr, major),
		offsetof(struct rpmem_pool_attr, compat_features),
		offsetof(struct rpmem_pool_attr, incompat_features),
		offsetof(struct rpmem_pool_attr, ro_compat_features),
		offsetof(struct rpmem_pool_attr, poolset_uuid),
		offsetof(struct rpmem_pool_attr, uuid),
		offsetof(struct rpmem_pool_attr, next_uuid),
		offsetof(struct rpmem_pool_attr, prev_uuid),
		offsetof(struct rpmem_pool_attr, user_flags));

	CHECK(RPMEM_POOL_HDR_SIG_LEN == 8);
	CHECK(RPMEM_POOL_HDR_UUID_LEN == 16);
	CHECK(RPMEM_POOL_USER_FLAGS_LEN == 16);
	CHECK(RPMEM_PERSIST_RELAXED == 1U);
	CHECK(RPMEM_FLUSH_RELAXED == 1U);
	CHECK(RPMEM_REMOVE_FORCE == 0x1);
	CHECK(RPMEM_REMOVE_POOL_SET == 0x2);
	CHECK(RPMEM_MAJOR_VERSION == 1);
	CHECK(RPMEM_MINOR_VERSION == 3);
	CHECK(RPMEM_MIN_POOL == 8192);
	CHECK(RPMEM_MIN_PART == 2 * 1024 * 1024);

	/* before any failure the message is empty, not NULL */
	const char *msg = rpmem_errormsg();
	CHECK(msg != NULL && msg[0] == '\0');

	for (unsigned minor = 0; minor <= RPMEM_MINOR_VERSION; minor++)
		CHECK(rpmem_check_version(RPMEM_MAJOR_VERSION, minor) == NULL);

	errno = 1234;
	const char *m = rpmem_check_version(RPMEM_MAJOR_VERSION,
			RPMEM_MINOR_VERSION + 1);
	CHECK(m != NULL);
	CHECK(strcmp(m, "librpmem minor version mismatch (need 4, found 3)") == 0);
	CHECK(errno == 1234);
	CHECK(strcmp(rpmem_errormsg(), m) == 0);
	/* one buffer per thread: the pointer stays the same */
	CHECK(rpmem_errormsg() == msg);

	m = rpmem_check_version(2, 0);
	CHECK(m != NULL);
	CHECK(strcmp(m, "librpmem major version mismatch (need 2, found 1)") == 0);
	m = rpmem_check_version(0, 0);
	CHECK(m != NULL && strstr(m, "major version mismatch (need 0") != NULL);

	pthread_t t;
	CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(strcmp(rpmem_errormsg(),
		"librpmem major version mismatch (need 0, found 1)") == 0);

	/* a successful check does not clear the message */
	CHECK(rpmem_check_version(1, 0) == NULL);
	CHECK(strstr(rpmem_errormsg(), "need 0") != NULL);

	printf("layout: ok\n");
	return 0;
}
