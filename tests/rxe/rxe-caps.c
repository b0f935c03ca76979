/*
 * rxe-caps: what the guest's soft-RoCE device can do for a remote-persistence transport.
 * Part of the rxe rig (tests/rxe/run.sh); built on the host, run inside the guest.
 *
 *   rxe-caps DEV GID_INDEX [fsdax=DIR] [devdax=DEV] [file=DIR] [shmem=DIR] [nvdimm=DEV]
 *
 * 1. Prints the device's extended capability bits: RDMA FLUSH (global / persistent placement)
 *    and RDMA ATOMIC WRITE as the kernel advertises them, ODP support, atomic_cap.
 * 2. Tries ibv_reg_mr (local write, remote read/write/atomic) on anonymous memory and on a
 *    MAP_SHARED mapping of each of: a new file on the fsdax mount DIR, the Device DAX
 *    character device DEV, a new file on the page-cache (non-DAX ext4) mount DIR, a new file
 *    on the tmpfs mount DIR, the Device DAX of an ACPI NVDIMM (nvdimm=DEV).
 * 3. Connects two RC QPs of DEV to each other (loopback through the RoCEv2 GID) and runs
 *    RDMA WRITE followed by RDMA READ (the read-after-write persistence idiom) into each memory
 *    kind that registered, checking the bytes; then one ATOMIC WRITE (ibv_wr_atomic_write)
 *    and, when built against rdma-core >= 45 (RXE_CAPS_FLUSH), RDMA WRITE + RDMA FLUSH of
 *    each placement type (global visibility, persistence) into anonymous memory and into
 *    Device DAX, each through a second registration with IBV_ACCESS_FLUSH_GLOBAL or
 *    IBV_ACCESS_FLUSH_PERSISTENT (rxe refuses the persistent one on memory that the kernel
 *    does not list as persistent memory).
 *
 * Lines starting "RESULT " are the findings the rig copies into its summary.  Exits 0 when
 * anonymous memory works for WRITE+READ (the baseline every later check builds on), 1
 * otherwise: unsupported optional features are findings, not failures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define REGION (2u * 1024 * 1024)
#define CAP_FLUSH_GLOBAL (1ULL << 38)
#define CAP_FLUSH_PERSISTENT (1ULL << 39)
#define CAP_ATOMIC_WRITE (1ULL << 40)
#define MR_ACCESS                                                                          \
	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |         \
	 IBV_ACCESS_REMOTE_ATOMIC)

struct loop {
	unsigned int qp_access; /* extra responder access flags of QPs made from now on */
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *a, *b; /* a sends to b */
	union ibv_gid gid;
	int gid_index;
};

static const char *yes_no(uint64_t v) { return v != 0 ? "yes" : "no"; }

static struct ibv_context *open_dev(const char *name)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);
	struct ibv_context *ctx = NULL;
	for (int i = 0; list && i < n; i++)
		if (strcmp(ibv_get_device_name(list[i]), name) == 0)
			ctx = ibv_open_device(list[i]);
	if (list)
		ibv_free_device_list(list);
	return ctx;
}

static struct ibv_qp *make_qp(struct loop *l, uint64_t send_ops)
{
	struct ibv_qp_init_attr_ex init;
	memset(&init, 0, sizeof(init));
	init.qp_type = IBV_QPT_RC;
	init.send_cq = l->cq;
	init.recv_cq = l->cq;
	init.cap.max_send_wr = 16;
	init.cap.max_recv_wr = 16;
	init.cap.max_send_sge = 1;
	init.cap.max_recv_sge = 1;
	init.cap.max_inline_data = 64;
	init.pd = l->pd;
	init.comp_mask = IBV_QP_INIT_ATTR_PD;
	if (send_ops) {
		init.comp_mask |= IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
		init.send_ops_flags = send_ops;
	}
	return ibv_create_qp_ex(l->ctx, &init);
}

/* INIT -> RTR -> RTS, with the peer being QP number dest on this same device and GID */
static int connect_qp(struct loop *l, struct ibv_qp *qp, uint32_t dest)
{
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qp_access_flags = MR_ACCESS | l->qp_access;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				      IBV_QP_ACCESS_FLAGS))
		return -1;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = IBV_MTU_1024;
	a.dest_qp_num = dest;
	a.max_dest_rd_atomic = 4;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = l->gid;
	a.ah_attr.grh.sgid_index = (uint8_t)l->gid_index;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.port_num = 1;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				      IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
				      IBV_QP_MIN_RNR_TIMER))
		return -1;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 4;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
					     IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
					     IBV_QP_MAX_QP_RD_ATOMIC);
}

static int make_pair(struct loop *l, uint64_t send_ops)
{
	l->a = make_qp(l, send_ops);
	if (!l->a)
		return -1;
	l->b = make_qp(l, 0);
	if (!l->b)
		return -1;
	if (connect_qp(l, l->a, l->b->qp_num) || connect_qp(l, l->b, l->a->qp_num))
		return -1;
	return 0;
}

static void drop_pair(struct loop *l)
{
	if (l->a)
		ibv_destroy_qp(l->a);
	if (l->b)
		ibv_destroy_qp(l->b);
	l->a = l->b = NULL;
}

/* wait (at most 5 s) for one completion; 0 when it succeeded */
static int wait_one(struct loop *l, const char *what)
{
	struct ibv_wc wc;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int n = ibv_poll_cq(l->cq, 1, &wc);
		if (n < 0) {
			printf("  %s: ibv_poll_cq failed\n", what);
			return -1;
		}
		if (n == 1) {
			if (wc.status != IBV_WC_SUCCESS) {
				printf("  %s: completion status %s\n", what,
				       ibv_wc_status_str(wc.status));
				return -1;
			}
			return 0;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 5) {
			printf("  %s: no completion within 5 s\n", what);
			return -1;
		}
		usleep(50);
	}
}

static int post(struct loop *l, enum ibv_wr_opcode op, struct ibv_mr *local, void *laddr,
		uint32_t len, struct ibv_mr *remote, void *raddr, const char *what)
{
	struct ibv_sge sge = {.addr = (uintptr_t)laddr, .length = len, .lkey = local->lkey};
	struct ibv_send_wr wr, *bad = NULL;
	memset(&wr, 0, sizeof(wr));
	wr.opcode = op;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.wr.rdma.remote_addr = (uintptr_t)raddr;
	wr.wr.rdma.rkey = remote->rkey;
	if (ibv_post_send(l->a, &wr, &bad)) {
		printf("  %s: ibv_post_send failed: %s\n", what, strerror(errno));
		return -1;
	}
	return wait_one(l, what);
}

/* RDMA WRITE 4 KiB from src into dst+off, RDMA READ it back into src+8K, compare */
static int write_read(struct loop *l, struct ibv_mr *src, struct ibv_mr *dst, const char *kind)
{
	char *s = src->addr, *d = dst->addr;
	for (int i = 0; i < 4096; i++)
		s[i] = (char)(i * 7 + 3);
	memset(s + 8192, 0, 4096);
	if (post(l, IBV_WR_RDMA_WRITE, src, s, 4096, dst, d + 4096, "RDMA WRITE") ||
	    post(l, IBV_WR_RDMA_READ, src, s + 8192, 4096, dst, d + 4096, "RDMA READ"))
		return -1;
	if (memcmp(s, d + 4096, 4096) != 0 || memcmp(s, s + 8192, 4096) != 0) {
		printf("  %s: data did not arrive / read back intact\n", kind);
		return -1;
	}
	return 0;
}

static void *map_file(const char *dir, const char *name, int *fd_out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return NULL;
	unlink(path);
	if (ftruncate(fd, REGION)) {
		close(fd);
		return NULL;
	}
	void *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	memset(p, 0, REGION);
	*fd_out = fd;
	return p;
}

static void *map_dev(const char *dev)
{
	int fd = open(dev, O_RDWR);
	if (fd < 0)
		return NULL;
	void *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

#ifdef RXE_CAPS_FLUSH
/*
 * Registers [addr, addr + REGION) again with FLUSH access of one placement type, then WRITEs
 * 4 KiB from src into it and FLUSHes that range (one ibv_wr_start..ibv_wr_complete batch, both
 * signaled), and checks that the bytes arrived.  Prints one RESULT line.  Returns non-zero
 * when the QP may have gone to the error state.
 */
static int flush_once(struct loop *l, struct ibv_mr *src, void *addr, const char *kind,
		      const char *tname, unsigned int access, uint8_t type)
{
	errno = 0;
	struct ibv_mr *mr = ibv_reg_mr(l->pd, addr, REGION, MR_ACCESS | access);
	if (!mr) {
		printf("RESULT FLUSH %s into %s: ibv_reg_mr with IBV_ACCESS_FLUSH_%s FAILS: %s\n",
		       tname, kind, type == IBV_FLUSH_GLOBAL ? "GLOBAL" : "PERSISTENT",
		       strerror(errno));
		return 0;
	}
	char *s = src->addr, *d = (char *)addr + 12288;
	for (int i = 0; i < 4096; i++)
		s[i] = (char)(i * 13 + type);
	struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(l->a);
	ibv_wr_start(qpx);
	qpx->wr_id = 9;
	qpx->wr_flags = IBV_SEND_SIGNALED;
	ibv_wr_rdma_write(qpx, mr->rkey, (uintptr_t)d);
	ibv_wr_set_sge(qpx, src->lkey, (uintptr_t)s, 4096);
	qpx->wr_id = 10;
	qpx->wr_flags = IBV_SEND_SIGNALED;
	ibv_wr_flush(qpx, mr->rkey, (uintptr_t)d, 4096, type, IBV_FLUSH_RANGE);
	int rc = ibv_wr_complete(qpx), bad = 1;
	if (rc) {
		printf("RESULT FLUSH %s into %s: ibv_wr_complete FAILS: %s\n", tname, kind,
		       strerror(rc));
	} else if (wait_one(l, "WRITE before FLUSH") == 0 && wait_one(l, "FLUSH") == 0) {
		bad = 0;
		printf("RESULT FLUSH %s (range) after WRITE into %s: works, %s\n", tname, kind,
		       memcmp(s, d, 4096) == 0 ? "data intact" : "DATA DIFFERS");
	} else {
		printf("RESULT FLUSH %s (range) after WRITE into %s: FAILS\n", tname, kind);
	}
	ibv_dereg_mr(mr);
	return bad;
}
#endif

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr,
			"usage: %s DEV GID_INDEX [fsdax=DIR] [devdax=DEV] [file=DIR] [shmem=DIR] "
			"[nvdimm=DEV]\n",
			argv[0]);
		return 2;
	}
	struct loop l;
	memset(&l, 0, sizeof(l));
	l.gid_index = atoi(argv[2]);
	l.ctx = open_dev(argv[1]);
	if (!l.ctx) {
		printf("RESULT cannot open device %s\n", argv[1]);
		return 1;
	}
	struct ibv_device_attr_ex attr;
	memset(&attr, 0, sizeof(attr));
	if (ibv_query_device_ex(l.ctx, NULL, &attr)) {
		printf("RESULT ibv_query_device_ex failed on %s\n", argv[1]);
		return 1;
	}
	uint64_t caps = attr.device_cap_flags_ex;
	printf("device_cap_flags_ex = 0x%" PRIx64 ", atomic_cap = %d, max_qp_rd_atom = %d\n",
	       caps, (int)attr.orig_attr.atomic_cap, attr.orig_attr.max_qp_rd_atom);
	printf("RESULT kernel advertises RDMA FLUSH: global %s, persistent %s; ATOMIC WRITE: %s; "
	       "ODP: %s\n",
	       yes_no(caps & CAP_FLUSH_GLOBAL), yes_no(caps & CAP_FLUSH_PERSISTENT),
	       yes_no(caps & CAP_ATOMIC_WRITE),
	       yes_no(attr.odp_caps.general_caps & IBV_ODP_SUPPORT));

	if (ibv_query_gid(l.ctx, 1, l.gid_index, &l.gid)) {
		printf("RESULT ibv_query_gid(port 1, index %d) failed\n", l.gid_index);
		return 1;
	}
	l.pd = ibv_alloc_pd(l.ctx);
	l.cq = l.pd ? ibv_create_cq(l.ctx, 64, NULL, NULL, 0) : NULL;
	if (!l.cq || make_pair(&l, 0)) {
		printf("RESULT cannot set up a loopback RC QP pair on %s: %s\n", argv[1],
		       strerror(errno));
		return 1;
	}

	/* memory kinds */
	struct {
		const char *kind;
		void *addr;
		struct ibv_mr *mr;
	} mem[8];
	int nmem = 0, fd;
	mem[nmem].kind = "anonymous memory";
	mem[nmem++].addr = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 3; i < argc && nmem < 8; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "fsdax=", 6) == 0 && arg[6]) {
			mem[nmem].kind = "fsdax file (MAP_SHARED)";
			mem[nmem++].addr = map_file(arg + 6, ".rxe-caps-fsdax", &fd);
		} else if (strncmp(arg, "devdax=", 7) == 0 && arg[7]) {
			mem[nmem].kind = "Device DAX (MAP_SHARED)";
			mem[nmem++].addr = map_dev(arg + 7);
		} else if (strncmp(arg, "file=", 5) == 0 && arg[5]) {
			mem[nmem].kind = "page-cache file, ext4 (MAP_SHARED)";
			mem[nmem++].addr = map_file(arg + 5, ".rxe-caps-file", &fd);
		} else if (strncmp(arg, "nvdimm=", 7) == 0 && arg[7]) {
			mem[nmem].kind = "Device DAX on an ACPI NVDIMM (MAP_SHARED)";
			mem[nmem++].addr = map_dev(arg + 7);
		} else if (strncmp(arg, "shmem=", 6) == 0 && arg[6]) {
			mem[nmem].kind = "tmpfs file (MAP_SHARED)";
			mem[nmem++].addr = map_file(arg + 6, ".rxe-caps-shmem", &fd);
		}
	}
	for (int i = 0; i < nmem; i++) {
		if (!mem[i].addr || mem[i].addr == MAP_FAILED) {
			mem[i].addr = NULL;
			mem[i].mr = NULL;
			printf("RESULT ibv_reg_mr on %s: not tried, mapping failed\n", mem[i].kind);
			continue;
		}
		errno = 0;
		mem[i].mr = ibv_reg_mr(l.pd, mem[i].addr, REGION, MR_ACCESS);
		printf("RESULT ibv_reg_mr on %s: %s%s\n", mem[i].kind,
		       mem[i].mr ? "ok" : "FAILS: ", mem[i].mr ? "" : strerror(errno));
	}
	if (!mem[0].mr) {
		printf("RESULT cannot register anonymous memory: nothing more to check\n");
		return 1;
	}

	int base_ok = 0;
	for (int i = 0; i < nmem; i++) {
		if (!mem[i].mr)
			continue;
		int ok = write_read(&l, mem[0].mr, mem[i].mr, mem[i].kind) == 0;
		if (i == 0)
			base_ok = ok;
		printf("RESULT RDMA WRITE then READ into %s: %s\n", mem[i].kind,
		       ok ? "ok, data intact" : "FAILS");
		if (!ok) { /* an errored QP stays in the error state: start a fresh pair */
			drop_pair(&l);
			if (make_pair(&l, 0)) {
				printf("RESULT cannot recreate the QP pair\n");
				return 1;
			}
		}
	}

	/* ATOMIC WRITE: 8 bytes placed atomically at the responder (rdma-core >= 44 API) */
	drop_pair(&l);
	if (make_pair(&l, IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_ATOMIC_WRITE)) {
		printf("RESULT ATOMIC WRITE: the provider refuses a QP with "
		       "IBV_QP_EX_WITH_ATOMIC_WRITE (%s)\n",
		       strerror(errno));
	} else {
		struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(l.a);
		uint64_t value = 0x0123456789abcdefULL;
		char *target = (char *)mem[0].addr + 65536;
		memset(target, 0, 8);
		ibv_wr_start(qpx);
		qpx->wr_id = 7;
		qpx->wr_flags = IBV_SEND_SIGNALED;
		ibv_wr_atomic_write(qpx, mem[0].mr->rkey, (uintptr_t)target, &value);
		int rc = ibv_wr_complete(qpx);
		if (rc) {
			printf("RESULT ATOMIC WRITE: ibv_wr_complete failed: %s\n", strerror(rc));
		} else if (wait_one(&l, "ATOMIC WRITE") == 0 && memcmp(target, &value, 8) == 0) {
			printf("RESULT ATOMIC WRITE (ibv_wr_atomic_write): works, 8 bytes placed\n");
		} else {
			printf("RESULT ATOMIC WRITE (ibv_wr_atomic_write): FAILS\n");
		}
	}
#ifdef RXE_CAPS_FLUSH
	/* RDMA FLUSH: WRITE 4 KiB then FLUSH that range, both through the ibv_wr_* API, into a
	 * second registration of each memory kind that allows it, for each placement type. */
	drop_pair(&l);
	/* the responder's QP must allow FLUSH too (rdma_cm's passive side gets these flags from
	 * the kernel when the device has the capability; here the QPs are set up by hand) */
	l.qp_access = IBV_ACCESS_FLUSH_GLOBAL | IBV_ACCESS_FLUSH_PERSISTENT;
	if (make_pair(&l, IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_FLUSH)) {
		printf("RESULT FLUSH: the provider refuses a QP with IBV_QP_EX_WITH_FLUSH (%s)\n",
		       strerror(errno));
	} else {
		static const struct {
			const char *name;
			unsigned int access;
			uint8_t type;
		} types[] = {
			{"global", IBV_ACCESS_FLUSH_GLOBAL, IBV_FLUSH_GLOBAL},
			{"persistent", IBV_ACCESS_FLUSH_PERSISTENT, IBV_FLUSH_PERSISTENT},
		};
		for (int i = 0; i < nmem; i++) {
			if (!mem[i].mr || (i != 0 && strncmp(mem[i].kind, "Device DAX", 10) != 0))
				continue; /* anonymous memory and the Device DAX kinds */
			for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
				if (flush_once(&l, mem[0].mr, mem[i].addr, mem[i].kind, types[t].name,
					       types[t].access, types[t].type)) {
					drop_pair(&l);
					if (make_pair(&l, IBV_QP_EX_WITH_RDMA_WRITE |
								  IBV_QP_EX_WITH_FLUSH)) {
						printf("RESULT cannot recreate the FLUSH QP pair\n");
						return 1;
					}
				}
		}
	}
#else
	printf("RESULT FLUSH: not tried: this rdma-core's verbs.h has no ibv_wr_flush (needs 45+)\n");
#endif
	return base_ok ? 0 : 1;
}
