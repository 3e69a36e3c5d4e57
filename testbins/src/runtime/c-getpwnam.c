/* getpwnam(argv[1]) and print uid:gid:home.
 * Runtime needs: /etc/passwd (glibc through NSS "passwd", musl directly). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s USER\n", argv[0]);
        return 2;
    }
    errno = 0;
    struct passwd *pw = getpwnam(argv[1]);
    if (pw == NULL) {
        /* errno 0 means "no such entry", which is what a missing /etc/passwd looks like. */
        fprintf(stderr, "getpwnam(%s) failed: %s\n", argv[1],
                errno != 0 ? strerror(errno) : "no such user");
        return 1;
    }
    printf("%u:%u:%s\n", (unsigned)pw->pw_uid, (unsigned)pw->pw_gid, pw->pw_dir);
    return 0;
}
