#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "CSandboxLinux.h"

static int lo_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) rc = -errno;
    else {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) rc = -errno;
    }
    close(s);
    return rc;
}

static int bind_all(const struct sbx_listen *l, int n, int *fds) {
    for (int i = 0; i < n; i++) fds[i] = -1;
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        socklen_t len;
        int family;
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, l[i].address, &v4->sin_addr) == 1) {
            family = AF_INET; v4->sin_family = AF_INET; v4->sin_port = htons((uint16_t)l[i].port); len = sizeof *v4;
        } else if (inet_pton(AF_INET6, l[i].address, &v6->sin6_addr) == 1) {
            family = AF_INET6; v6->sin6_family = AF_INET6; v6->sin6_port = htons((uint16_t)l[i].port); len = sizeof *v6;
        } else {
            return -EINVAL;
        }
        int fd = socket(family, (l[i].udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) goto fail;
        fds[i] = fd;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&ss, len) < 0) goto fail;
        if (!l[i].udp && listen(fd, 1024) < 0) goto fail;
    }
    return 0;
fail:;
    int err = -errno;
    for (int i = 0; i < n; i++) if (fds[i] >= 0) { close(fds[i]); fds[i] = -1; }
    return err;
}

/// Runs `work` inside the network namespace `target` (or a new one when target < 0) on the calling
/// thread, then moves the thread back.
static int in_namespace(int target, const struct sbx_listen *l, int n, int *fds, int *nsfd) {
    int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig < 0) return -errno;
    int rc = 0;
    if (target < 0) {
        if (unshare(CLONE_NEWNET) < 0) { rc = -errno; close(orig); return rc; }
        rc = lo_up();
    } else if (setns(target, CLONE_NEWNET) < 0) {
        rc = -errno; close(orig); return rc;
    }
    if (rc == 0) rc = bind_all(l, n, fds);
    if (rc == 0 && nsfd) {
        *nsfd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (*nsfd < 0) rc = -errno;
    }
    if (setns(orig, CLONE_NEWNET) < 0) {
        // The thread is stuck elsewhere: the caller must let it end (it is a dedicated thread).
        if (rc == 0) rc = -errno;
        if (rc == 0) rc = -EIO;
    }
    close(orig);
    if (rc != 0) {
        if (nsfd && *nsfd >= 0) { close(*nsfd); *nsfd = -1; }
        for (int i = 0; i < n; i++) if (fds[i] >= 0) { close(fds[i]); fds[i] = -1; }
    }
    return rc;
}

int sbx_netns_create(const struct sbx_listen *l, int n, int *fds, int *nsfd) {
    *nsfd = -1;
    return in_namespace(-1, l, n, fds, nsfd);
}

int sbx_netns_bind_in(int nsfd, const struct sbx_listen *l, int n, int *fds) {
    return in_namespace(nsfd, l, n, fds, NULL);
}

int sbx_netns_socket(int nsfd, int family, int type) {
    int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig < 0) return -errno;
    if (setns(nsfd, CLONE_NEWNET) < 0) { int e = -errno; close(orig); return e; }
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    int err = fd < 0 ? -errno : 0;
    if (setns(orig, CLONE_NEWNET) < 0 && err == 0) err = -errno;
    close(orig);
    if (err != 0) { if (fd >= 0) close(fd); return err; }
    return fd;
}
