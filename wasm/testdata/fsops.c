/*
 * WASI preview1 program for the long-lived WASM sandbox tests: small file
 * operations a guest does between execs, including planting symbolic links
 * for the host-side files API to (not) follow. Runs the operations given as
 * arguments and prints one line per operation: "OK <op> <detail>" or
 * "ERR <op> <errno name>". Exits 0 unless an argument is malformed.
 *
 *   put PATH TEXT          create/truncate PATH and write TEXT
 *   cat PATH               print PATH's contents (up to 4 KiB) as "OK cat <contents>"
 *   mkdir PATH             create a directory
 *   symlink TARGET PATH    create the symbolic link PATH -> TARGET (TARGET as given)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    case EPERM: return "EPERM";
    case ELOOP: return "ELOOP";
    case ENOSPC: return "ENOSPC";
    default: return strerror(e);
    }
}

static void fail(const char *op)
{
    printf("ERR %s %s\n", op, ename(errno));
    fflush(stdout);
}

static void put(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t len = strlen(text);
    if (fd < 0) { fail("put"); return; }
    if (write(fd, text, len) != (ssize_t)len) { close(fd); fail("put"); return; }
    close(fd);
    printf("OK put %zu\n", len);
    fflush(stdout);
}

static void cat(const char *path)
{
    char buf[4097];
    ssize_t n;
    int fd = open(path, O_RDONLY);
    if (fd < 0) { fail("cat"); return; }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) { fail("cat"); return; }
    buf[n] = 0;
    printf("OK cat %s\n", buf);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int i = 1;
    while (i < argc) {
        const char *op = argv[i];
        const char *a = i + 1 < argc ? argv[i + 1] : NULL;
        const char *b = i + 2 < argc ? argv[i + 2] : NULL;
        if (a == NULL) { fprintf(stderr, "missing argument for %s\n", op); return 2; }
        if (!strcmp(op, "cat")) { cat(a); i += 2; }
        else if (!strcmp(op, "mkdir")) { if (mkdir(a, 0755) != 0) fail(op); else { printf("OK mkdir\n"); fflush(stdout); } i += 2; }
        else if (b == NULL) { fprintf(stderr, "missing argument for %s\n", op); return 2; }
        else if (!strcmp(op, "put")) { put(a, b); i += 3; }
        else if (!strcmp(op, "symlink")) { if (symlink(a, b) != 0) fail(op); else { printf("OK symlink\n"); fflush(stdout); } i += 3; }
        else { fprintf(stderr, "unknown operation %s\n", op); return 2; }
    }
    return 0;
}
