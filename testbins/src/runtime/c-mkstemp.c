/* mkstemp("/tmp/probeXXXXXX"), write, read back, unlink; print "ok".
 * Needs a /tmp directory the user can write to (mode 1777 in an image whose
 * program runs as a non-root user). No argument. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    char path[] = "/tmp/probeXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "mkstemp(/tmp/probeXXXXXX) failed: %s\n", strerror(errno));
        return 1;
    }
    static const char msg[] = "scratchprobe";
    char buf[sizeof msg];
    int ok = write(fd, msg, sizeof msg) == (ssize_t)sizeof msg && lseek(fd, 0, SEEK_SET) == 0 &&
             read(fd, buf, sizeof buf) == (ssize_t)sizeof buf && memcmp(buf, msg, sizeof msg) == 0;
    int saved = errno;
    close(fd);
    unlink(path);
    if (!ok) {
        fprintf(stderr, "write/read back in %s failed: %s\n", path, strerror(saved));
        return 1;
    }
    printf("ok\n");
    return 0;
}
