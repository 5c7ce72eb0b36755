/*
 * WASI preview1 program that tries to get around the WASM lane's workspace
 * limits and to block a host call. Runs a sequence of operations given as
 * arguments and prints one line per operation: "OK <op> <detail>" or
 * "ERR <op> <EFBIG|ENOSPC|...>". Exits 0 unless an argument is malformed.
 *
 *   write PATH BYTES       create/truncate PATH, write BYTES in 64 KiB chunks
 *   append PATH BYTES      open PATH with O_APPEND and write BYTES
 *   seek PATH OFFSET       open PATH, lseek to OFFSET, write one byte (sparse)
 *   pwrite PATH OFFSET     pwrite one byte at OFFSET
 *   truncate PATH SIZE     ftruncate PATH to SIZE
 *   allocate PATH LEN      posix_fallocate(0, LEN)
 *   files DIR N            create N empty files DIR/f0 ... (stops at the first error)
 *   mkdirs DIR N           create N directories DIR/d0 ...
 *   unlink PATH            remove a file
 *   read PATH              open PATH read-only and read from it
 *   sleep SECONDS          sleep(3) (poll_oneoff with a relative clock)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char chunk[65536];

static const char *ename(int e)
{
    switch (e) {
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case EACCES: return "EACCES";
    case ENOTSUP: return "ENOTSUP";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case ENXIO: return "ENXIO";
    default: return strerror(e);
    }
}

static int fail(const char *op)
{
    printf("ERR %s %s\n", op, ename(errno));
    fflush(stdout);
    return 1;
}

static void ok(const char *op, long long n)
{
    printf("OK %s %lld\n", op, n);
    fflush(stdout);
}

static int write_bytes(const char *op, const char *path, long long bytes, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);
    long long done = 0;
    if (fd < 0) return fail(op);
    while (done < bytes) {
        size_t n = bytes - done < (long long)sizeof chunk ? (size_t)(bytes - done) : sizeof chunk;
        ssize_t w = write(fd, chunk, n);
        if (w < 0) {
            printf("wrote %lld\n", done);
            close(fd);
            return fail(op);
        }
        done += w;
    }
    close(fd);
    ok(op, done);
    return 0;
}

static int at_offset(const char *op, const char *path, long long offset, int use_pwrite)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    int r;
    if (fd < 0) return fail(op);
    if (use_pwrite) {
        r = pwrite(fd, "x", 1, offset) == 1 ? 0 : -1;
    } else {
        r = lseek(fd, offset, SEEK_SET) < 0 ? -1 : (write(fd, "x", 1) == 1 ? 0 : -1);
    }
    if (r < 0) { close(fd); return fail(op); }
    close(fd);
    ok(op, offset + 1);
    return 0;
}

static int sized(const char *op, const char *path, long long size, int allocate)
{
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    int r;
    if (fd < 0) return fail(op);
    if (allocate) {
        r = posix_fallocate(fd, 0, size);
        if (r != 0) errno = r;
    } else {
        r = ftruncate(fd, size);
    }
    close(fd);
    if (r != 0) return fail(op);
    ok(op, size);
    return 0;
}

static int create_many(const char *op, const char *dir, long long n, int dirs)
{
    char path[512];
    long long i;
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%c%lld", dir, dirs ? 'd' : 'f', i);
        if (dirs) {
            if (mkdir(path, 0755) != 0) { printf("created %lld\n", i); return fail(op); }
        } else {
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
            if (fd < 0) { printf("created %lld\n", i); return fail(op); }
            close(fd);
        }
    }
    ok(op, n);
    return 0;
}

int main(int argc, char **argv)
{
    int i = 1;
    memset(chunk, 'a', sizeof chunk);
    while (i < argc) {
        const char *op = argv[i];
        const char *a = i + 1 < argc ? argv[i + 1] : NULL;
        long long n = i + 2 < argc ? strtoll(argv[i + 2], NULL, 0) : 0;
        if (a == NULL) { fprintf(stderr, "missing argument for %s\n", op); return 2; }
        if (!strcmp(op, "write")) { write_bytes(op, a, n, O_TRUNC); i += 3; }
        else if (!strcmp(op, "append")) { write_bytes(op, a, n, O_APPEND); i += 3; }
        else if (!strcmp(op, "seek")) { at_offset(op, a, n, 0); i += 3; }
        else if (!strcmp(op, "pwrite")) { at_offset(op, a, n, 1); i += 3; }
        else if (!strcmp(op, "truncate")) { sized(op, a, n, 0); i += 3; }
        else if (!strcmp(op, "allocate")) { sized(op, a, n, 1); i += 3; }
        else if (!strcmp(op, "files")) { create_many(op, a, n, 0); i += 3; }
        else if (!strcmp(op, "mkdirs")) { create_many(op, a, n, 1); i += 3; }
        else if (!strcmp(op, "unlink")) { if (unlink(a) != 0) fail(op); else ok(op, 0); i += 2; }
        else if (!strcmp(op, "read")) {
            char buf[16];
            int fd = open(a, O_RDONLY);
            if (fd < 0) fail(op);
            else { ssize_t r = read(fd, buf, sizeof buf); if (r < 0) fail(op); else ok(op, r); close(fd); }
            i += 2;
        }
        else if (!strcmp(op, "sleep")) { sleep((unsigned)strtoul(a, NULL, 0)); ok(op, 0); i += 2; }
        else { fprintf(stderr, "unknown operation %s\n", op); return 2; }
    }
    return 0;
}
