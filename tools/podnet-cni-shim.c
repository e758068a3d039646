/* podnet-cni-shim: the `podnet-cni` executable a CNI runtime execs when the node agent runs a
 * CNI server (podnet/cni/server.py). It starts in about a millisecond, where the Python plugin
 * pays ~12 ms of interpreter start-up and imports, and hands the call to the agent:
 *
 *   request   "PNC1" u32 env_len u32 stdin_len, the environment ("K=V\0" each), stdin;
 *             with it, as SCM_RIGHTS, an fd of the shim's own network namespace (the "host"
 *             the plugin acts on: the server works there, not in its own)
 *   response  "PNC1" i32 exit_status u32 stdout_len, stdout
 *
 * then writes the response's stdout and exits with its status: exactly what the exec'd plugin
 * would have printed. Integers are in the machine's byte order (both ends are on one host).
 *
 * Files are found next to the shim's own executable (/proc/self/exe): the server's socket
 * `cni.sock` (a symlink to the agent's socket) and the Python launcher `podnet-cni.py`. When
 * the socket is missing or refuses (no agent, a killed agent), the shim execs the launcher
 * with the same argv, environment and untouched stdin, so the plugin still works on its own.
 * A server that fails after accepting the call gives a CNI error (code 11, try again later):
 * the call may have been half done, so it is not replayed.
 *
 * Build: cc -O2 -o podnet-cni tools/podnet-cni-shim.c  (no dependencies)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static int fail(const char *what) {
    /* A CNI error object; `what` is a fixed text without quotes or backslashes. */
    printf("{\"cniVersion\":\"1.1.0\",\"code\":11,\"msg\":\"podnet-cni: %s\"}\n", what);
    return 1;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

static int recv_all(int fd, char *p, size_t n) {
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k <= 0)
            return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

/* Append a whole fd (stdin) to a growing buffer; -1 on error. */
static int slurp(int fd, char **buf, size_t *len) {
    size_t cap = 8192;
    *buf = malloc(cap), *len = 0;
    for (;;) {
        if (!*buf)
            return -1;
        if (*len == cap)
            *buf = realloc(*buf, cap *= 2);
        if (!*buf)
            return -1;
        ssize_t k = read(fd, *buf + *len, cap - *len);
        if (k == 0)
            return 0;
        if (k < 0)
            return -1;
        *len += (size_t)k;
    }
}

int main(int argc, char **argv) {
    (void)argc;
    char dir[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0)
        return fail("cannot read /proc/self/exe");
    dir[n] = 0;
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;

    /* Connect through /proc/self/fd/N of the directory: no limit on the path's length. */
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/cni.sock", dfd);
    if (dfd < 0 || s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(path, sizeof path, "%s/podnet-cni.py", dir);
        execv(path, argv);
        return fail("no CNI server and no podnet-cni.py launcher beside the shim");
    }
    close(dfd);

    char *in;
    size_t in_len, env_len = 0;
    if (slurp(0, &in, &in_len) != 0)
        return fail("cannot read stdin");
    for (char **e = environ; *e; e++)
        env_len += strlen(*e) + 1;
    char *env = malloc(env_len + 1), *p = env;
    if (!env)
        return fail("out of memory");
    for (char **e = environ; *e; e++) {
        size_t k = strlen(*e) + 1;
        memcpy(p, *e, k);
        p += k;
    }

    int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (ns < 0)
        return fail("cannot open /proc/self/ns/net");
    char head[12] = {'P', 'N', 'C', '1'};
    uint32_t lens[2] = {(uint32_t)env_len, (uint32_t)in_len};
    memcpy(head + 4, lens, 8);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = head, .iov_len = sizeof head};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &ns, sizeof(int));
    ssize_t k = sendmsg(s, &msg, MSG_NOSIGNAL);
    if (k < 0 || send_all(s, head + k, sizeof head - (size_t)k) != 0 ||
        send_all(s, env, env_len) != 0 || send_all(s, in, in_len) != 0)
        return fail("lost the CNI server while sending the call");

    char answer[12];
    int32_t status;
    uint32_t out_len;
    if (recv_all(s, answer, sizeof answer) != 0 || memcmp(answer, "PNC1", 4) != 0)
        return fail("the CNI server gave no answer");
    memcpy(&status, answer + 4, 4);
    memcpy(&out_len, answer + 8, 4);
    char *out = malloc(out_len ? out_len : 1);
    if (!out || recv_all(s, out, out_len) != 0)
        return fail("the CNI server's answer was cut short");
    for (size_t off = 0; off < out_len;) {
        ssize_t w = write(1, out + off, out_len - off);
        if (w <= 0)
            return 1;
        off += (size_t)w;
    }
    return status;
}
