/*
 * cxx.cc -- the header works from C++ (extern "C" linkage): the program
 * links against librpmem.so.1 and calls through the C names.
 */
#include <librpmem.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int
main()
{
	static_assert(sizeof(rpmem_pool_attr) == 104, "PMDK's size");
	if (rpmem_check_version(RPMEM_MAJOR_VERSION, RPMEM_MINOR_VERSION)) {
		std::puts("rpmem_check_version failed");
		return 1;
	}
	if (rpmem_persist(nullptr, 4096, 64, 0, 0) != -1 || errno != EINVAL) {
		std::puts("rpmem_persist(NULL) did not fail with EINVAL");
		return 1;
	}
	std::printf("%s\n", rpmem_errormsg());
	return std::strncmp(rpmem_errormsg(), "rpmem_persist: ", 15) != 0;
}
