/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * librpmem.h -- the C interface of librpmem.so.1 (rpmem-rs).
 *
 * The declarations, constants and the layout of struct rpmem_pool_attr are
 * those of PMDK 1.12.1's librpmem.h, so programs written for PMDK's librpmem
 * compile and link unchanged. The library behind it is the Rust `rpmem`
 * crate; see docs/librpmem.md for the manual and the differences from PMDK.
 */

#ifndef LIBRPMEM_H
#define LIBRPMEM_H 1

#include <sys/types.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * PMDK 1.12.1 marks every function deprecated (librpmem was dropped after
 * it). This library is maintained, so the attribute is empty unless the
 * program asks for PMDK's warning with -DRPMEM_WARN_DEPRECATED.
 */
#define RPMEM_DEPR_STR "Librpmem is deprecated."
#ifdef RPMEM_WARN_DEPRECATED
#define RPMEM_DEPR_ATTR __attribute__((deprecated(RPMEM_DEPR_STR)))
#else
#define RPMEM_DEPR_ATTR
#endif

typedef struct rpmem_pool RPMEMpool;

#define RPMEM_POOL_HDR_SIG_LEN	8
#define RPMEM_POOL_HDR_UUID_LEN	16 /* uuid byte length */
#define RPMEM_POOL_USER_FLAGS_LEN 16

/* 104 bytes; the offsets of the fields are PMDK's */
struct rpmem_pool_attr {
	char signature[RPMEM_POOL_HDR_SIG_LEN]; /* pool signature */
	uint32_t major; /* format major version number */
	uint32_t compat_features; /* mask: compatible "may" features */
	uint32_t incompat_features; /* mask: "must support" features */
	uint32_t ro_compat_features; /* mask: force RO if unsupported */
	unsigned char poolset_uuid[RPMEM_POOL_HDR_UUID_LEN]; /* pool uuid */
	unsigned char uuid[RPMEM_POOL_HDR_UUID_LEN]; /* first part uuid */
	unsigned char next_uuid[RPMEM_POOL_HDR_UUID_LEN]; /* next pool uuid */
	unsigned char prev_uuid[RPMEM_POOL_HDR_UUID_LEN]; /* prev pool uuid */
	unsigned char user_flags[RPMEM_POOL_USER_FLAGS_LEN]; /* user flags */
};

RPMEMpool *rpmem_create(const char *target, const char *pool_set_name,
		void *pool_addr, size_t pool_size, unsigned *nlanes,
		const struct rpmem_pool_attr *create_attr) RPMEM_DEPR_ATTR;

RPMEMpool *rpmem_open(const char *target, const char *pool_set_name,
		void *pool_addr, size_t pool_size, unsigned *nlanes,
		struct rpmem_pool_attr *open_attr) RPMEM_DEPR_ATTR;

int rpmem_set_attr(RPMEMpool *rpp,
		const struct rpmem_pool_attr *attr) RPMEM_DEPR_ATTR;

int rpmem_close(RPMEMpool *rpp) RPMEM_DEPR_ATTR;

#define RPMEM_PERSIST_RELAXED	(1U << 0)
#define RPMEM_FLUSH_RELAXED	(1U << 0)

int rpmem_flush(RPMEMpool *rpp, size_t offset, size_t length, unsigned lane,
		unsigned flags) RPMEM_DEPR_ATTR;
int rpmem_drain(RPMEMpool *rpp, unsigned lane, unsigned flags) RPMEM_DEPR_ATTR;

int rpmem_persist(RPMEMpool *rpp, size_t offset, size_t length,
		unsigned lane, unsigned flags) RPMEM_DEPR_ATTR;
int rpmem_read(RPMEMpool *rpp, void *buff, size_t offset, size_t length,
		unsigned lane) RPMEM_DEPR_ATTR;
int rpmem_deep_persist(RPMEMpool *rpp, size_t offset, size_t length,
		unsigned lane) RPMEM_DEPR_ATTR;

#define RPMEM_REMOVE_FORCE 0x1
#define RPMEM_REMOVE_POOL_SET 0x2

int rpmem_remove(const char *target,
		const char *pool_set, int flags) RPMEM_DEPR_ATTR;

/*
 * The version of the API this header describes; pass them to
 * rpmem_check_version() to check the library loaded at run time.
 */
#define RPMEM_MAJOR_VERSION 1
#define RPMEM_MINOR_VERSION 3
const char *rpmem_check_version(unsigned major_required,
		unsigned minor_required) RPMEM_DEPR_ATTR;

const char *rpmem_errormsg(void) RPMEM_DEPR_ATTR;

/* minimum size of a pool */
#define RPMEM_MIN_POOL ((size_t)(1024 * 8)) /* 8 KB */

/* minimum size of a part file of a remote pool set: header plus alignment */
#define RPMEM_MIN_PART ((size_t)(1024 * 1024 * 2)) /* 2 MiB */

#ifdef __cplusplus
}
#endif
#endif	/* librpmem.h */
