/*
 * lanes.c -- a call on one lane does not hold up calls on other lanes.
 *
 * Lane 0's rpmem_persist is made to stop in the middle: the page it sends
 * is registered with userfaultfd and not yet there, so the thread that
 * reads it (the kernel's sendmsg, or the library's copy) waits until this
 * program supplies the page. While it waits — provably inside the call,
 * holding lane 0 — another thread must complete persists, a flush, a
 * drain and a read on lane 1. With a pool-wide lock it would wait for lane
 * 0 forever; the program then fails after 10 s. Finally the page is
 * supplied, lane 0's persist completes, and its bytes are on the target.
 *
 * usage: lanes <pool set (NOHDRS)> <pool size>
 * Needs userfaultfd (root, or vm.unprivileged_userfaultfd = 1).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>

#include "check.h"

#define HOST "localhost"
#define PAGE 4096
#define SMALL_CALLS 20

static RPMEMpool *Rpp;
static char *Pool;
static size_t Size;
static size_t Trap;		/* offset of the page lane 0 waits for */
static atomic_int BigDone;
static atomic_int SmallDone;

static void *
big(void *arg)
{
	(void) arg;
	if (rpmem_persist(Rpp, Trap, PAGE, 0, 0))
		FAIL("lane 0 rpmem_persist");
	atomic_store(&BigDone, 1);
	return NULL;
}

static void *
small(void *arg)
{
	(void) arg;
	char buf[PAGE];
	for (int i = 0; i < SMALL_CALLS; i++) {
		memset(Pool + PAGE, i, PAGE);
		if (rpmem_persist(Rpp, PAGE, PAGE, 1, i % 2 ?
				RPMEM_PERSIST_RELAXED : 0))
			FAIL("lane 1 rpmem_persist");
	}
	if (rpmem_flush(Rpp, 2 * PAGE, PAGE, 1, 0) ||
	    rpmem_drain(Rpp, 1, 0))
		FAIL("lane 1 rpmem_flush/rpmem_drain");
	if (rpmem_read(Rpp, buf, PAGE, PAGE, 1))
		FAIL("lane 1 rpmem_read");
	for (int i = 0; i < PAGE; i++)
		CHECK(buf[i] == SMALL_CALLS - 1);
	atomic_store(&SmallDone, 1);
	return NULL;
}

int
main(int argc, char *argv[])
{
	if (argc != 3)
		FAIL("usage: lanes <pool set> <pool size>");
	Size = strtoull(argv[2], NULL, 0);
	Pool = map_pool(Size);
	Trap = Size / 2;

	long uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		FAIL("userfaultfd (run as root or set "
			"vm.unprivileged_userfaultfd = 1)");
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	CHECK(ioctl((int)uffd, UFFDIO_API, &api) == 0);
	/* the page is untouched: its first access faults to us */
	struct uffdio_register reg = {
		.range = { .start = (unsigned long)(Pool + Trap), .len = PAGE },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	CHECK(ioctl((int)uffd, UFFDIO_REGISTER, &reg) == 0);

	unsigned n = 2;
	Rpp = rpmem_create(HOST, argv[1], Pool, Size, &n, NULL);
	if (!Rpp)
		FAIL("rpmem_create");
	CHECK(n == 2);

	pthread_t a, b;
	CHECK(pthread_create(&a, NULL, big, NULL) == 0);
	/* wait until lane 0's call reads the page */
	struct pollfd p = { .fd = (int)uffd, .events = POLLIN };
	if (poll(&p, 1, 10000) != 1)
		FAIL("lane 0's persist never read the trapped page");
	struct uffd_msg msg;
	CHECK(read((int)uffd, &msg, sizeof(msg)) == sizeof(msg));
	CHECK(msg.event == UFFD_EVENT_PAGEFAULT);
	CHECK(msg.arg.pagefault.address >= (unsigned long)(Pool + Trap));
	CHECK(msg.arg.pagefault.address < (unsigned long)(Pool + Trap + PAGE));
	printf("lane 0 is waiting inside rpmem_persist\n");

	/* lane 1 works meanwhile */
	CHECK(pthread_create(&b, NULL, small, NULL) == 0);
	for (int i = 0; i < 10000 && !atomic_load(&SmallDone); i++)
		usleep(1000);
	if (!atomic_load(&SmallDone))
		FAIL("lane 1 did not complete while lane 0 was busy");
	CHECK(!atomic_load(&BigDone));
	CHECK(pthread_join(b, NULL) == 0);
	printf("lane 1: %d persists, a flush, a drain and a read done "
		"meanwhile\n", SMALL_CALLS);

	/* supply the page: lane 0's persist goes on */
	static char page[PAGE] __attribute__((aligned(PAGE)));
	memset(page, 0x77, sizeof(page));
	struct uffdio_copy copy = {
		.dst = (unsigned long)(Pool + Trap),
		.src = (unsigned long)page,
		.len = PAGE,
		.mode = 0,
	};
	CHECK(ioctl((int)uffd, UFFDIO_COPY, &copy) == 0);
	CHECK(pthread_join(a, NULL) == 0);
	CHECK(atomic_load(&BigDone));

	char buf[PAGE];
	EXPECT_OK(rpmem_read(Rpp, buf, Trap, PAGE, 1));
	for (int i = 0; i < PAGE; i++)
		CHECK((unsigned char)buf[i] == 0x77);
	EXPECT_OK(rpmem_close(Rpp));
	close((int)uffd);
	printf("lanes: ok\n");
	return 0;
}
