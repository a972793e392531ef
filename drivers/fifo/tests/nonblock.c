// SPDX-License-Identifier: GPL-2.0
/*
 * O_NONBLOCK test for /dev/kforge-fifo, run by tests/nonblock.sh as
 * `nonblock DEVICE CAPACITY` on an empty FIFO. Exit 0 = pass, 1 = fail, 4 = skip.
 *
 * Built static against the kernel's nolibc (no libc, any arch). UAPI headers come from
 * `make -C $LINUX O=$HDR ARCH=<x86|arm64|arm> headers` (writes only $HDR/usr/include):
 *   clang --target=x86_64-linux-gnu -fuse-ld=lld -nostdlib -nostdinc -static -fno-builtin \
 *     -Os -Wall -Wextra -isystem $LINUX/tools/include/nolibc -isystem $HDR/usr/include \
 *     -include nolibc.h -o tests/nonblock tests/nonblock.c
 * (aarch64-linux-gnu for arm64; armv7a-linux-gnueabihf -marm for arm). -fno-builtin stops
 * clang from turning printf() into a call to puts(), which nolibc only has as a static inline.
 */

#ifdef __NR_fcntl64 /* 32-bit arches: fcntl64 is the full-featured one */
#define NR_FCNTL __NR_fcntl64
#else
#define NR_FCNTL __NR_fcntl
#endif

#define MAX_CAPACITY (1 << 20)

static char pattern[MAX_CAPACITY + 32];
static char out[MAX_CAPACITY + 32];
static int failures;

static void check(int ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	if (!ok)
		failures++;
}

/* The call failed with EAGAIN (instead of sleeping or succeeding). */
static int eagain(long ret)
{
	return ret == -1 && errno == EAGAIN;
}

int main(int argc, char **argv)
{
	int cap, fd, fd2, i, first;
	long ret;

	if (argc != 3) {
		printf("usage: nonblock DEVICE CAPACITY\n");
		return 1;
	}
	cap = atoi(argv[2]);
	if (cap < 16 || cap > MAX_CAPACITY) {
		printf("capacity %d outside the 16..%d this test needs\n", cap, MAX_CAPACITY);
		return 4;
	}
	for (i = 0; i < cap + 32; i++)
		pattern[i] = (char)(i * 7 + 3);

	fd = open(argv[1], O_RDWR | O_NONBLOCK);
	if (fd < 0) {
		printf("FAIL: open %s: errno %d\n", argv[1], errno);
		return 1;
	}

	check(eagain(read(fd, out, 16)), "read of the empty FIFO gives EAGAIN");

	first = cap - 10;
	ret = write(fd, pattern, first);
	check(ret == first, "write of capacity-10 bytes is complete");
	ret = write(fd, pattern + first, 20);
	check(ret == 10, "write of 20 bytes with 10 free is short (10)");
	check(eagain(write(fd, pattern + cap, 1)), "write to the full FIFO gives EAGAIN");

	ret = read(fd, out, cap + 10);
	check(ret == cap, "read returns the whole content (capacity bytes)");
	check(ret == cap && memcmp(out, pattern, cap) == 0, "content is intact and in order");
	check(eagain(read(fd, out, 1)), "read after draining gives EAGAIN again");

	/* O_NONBLOCK is looked up on every call, so fcntl(F_SETFL) after open counts too. */
	fd2 = open(argv[1], O_RDWR);
	check(fd2 >= 0, "second open without O_NONBLOCK");
	check(syscall(NR_FCNTL, fd2, F_SETFL, O_NONBLOCK) == 0, "fcntl(F_SETFL, O_NONBLOCK)");
	check(eagain(read(fd2, out, 1)), "read after fcntl(O_NONBLOCK) gives EAGAIN");
	check(syscall(NR_FCNTL, fd2, F_SETFL, 0) == 0, "fcntl(F_SETFL, 0)");
	check(write(fd2, "z", 1) == 1, "blocking-mode write with space succeeds");
	check(read(fd2, out, 8) == 1 && out[0] == 'z', "blocking-mode read with data returns it");

	close(fd2);
	close(fd);
	printf("%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
