/* sandbox_probe: report, as one JSON object on stdout, what the sandbox it runs in lets a
 * program do.  It tries what a hostile program would try (mount, mknod, chroot escape,
 * new user namespace, reading host files, writing the root) and records each result; it
 * never stops on a failure, and exits 0 when the report is written.
 *
 *   sandbox-probe [--read PATH]... [--write PATH]... [--blockdev MAJ:MIN]
 *   sandbox-probe --flood stdout|stderr     write forever (to test output bounds)
 *
 * Built static with musl (testbins/build.sh) so that it runs in an image with nothing
 * else in it.  Results are "ok" or "errno N" (the raw errno, so tests compare numbers).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PATHS 64

static int first = 1;

static void json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void key(const char *name) {
    fputs(first ? "{" : ",", stdout);
    first = 0;
    printf("\n  ");
    json_string(name, strlen(name));
    fputs(": ", stdout);
}

static void field(const char *name, const char *value) {
    key(name);
    json_string(value, strlen(value));
}

static void field_int(const char *name, long value) {
    key(name);
    printf("%ld", value);
}

/* "ok" when rc is not negative, else "errno N". */
static const char *result(int rc) {
    static char buf[32];
    if (rc >= 0)
        return "ok";
    snprintf(buf, sizeof buf, "errno %d", errno);
    return buf;
}

/* The whole file, or "errno N" when it cannot be read.  NUL bytes become spaces. */
static void field_file(const char *name, const char *path) {
    static char buf[1 << 16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        field(name, result(-1));
        return;
    }
    size_t len = 0;
    ssize_t got;
    while (len < sizeof buf && (got = read(fd, buf + len, sizeof buf - len)) > 0)
        len += (size_t)got;
    close(fd);
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    key(name);
    json_string(buf, len);
}

/* One line of /proc/self/status, e.g. "CapEff", without the name and the tab. */
static void status_field(const char *name, const char *want) {
    char line[256];
    FILE *f = fopen("/proc/self/status", "re");
    size_t n = strlen(want);
    if (f == NULL) {
        field(name, result(-1));
        return;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, n) == 0 && line[n] == ':') {
            char *v = line + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            field(name, v);
            fclose(f);
            return;
        }
    }
    fclose(f);
    field(name, "absent");
}

/* Every entry of a directory as "name:type" (c char device, b block device, d directory,
 * l symlink, f file, s socket, p fifo). */
static void field_dir(const char *name, const char *path) {
    DIR *d = opendir(path);
    key(name);
    if (d == NULL) {
        json_string(result(-1), strlen(result(-1)));
        return;
    }
    fputs("[", stdout);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char full[4096], entry[512];
        struct stat st;
        char type = '?';
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (lstat(full, &st) == 0) {
            type = S_ISCHR(st.st_mode)    ? 'c'
                   : S_ISBLK(st.st_mode)  ? 'b'
                   : S_ISDIR(st.st_mode)  ? 'd'
                   : S_ISLNK(st.st_mode)  ? 'l'
                   : S_ISSOCK(st.st_mode) ? 's'
                   : S_ISFIFO(st.st_mode) ? 'p'
                                          : 'f';
        }
        snprintf(entry, sizeof entry, "%s:%c", e->d_name, type);
        fputs(n++ ? ", " : "", stdout);
        json_string(entry, strlen(entry));
    }
    closedir(d);
    fputs("]", stdout);
}

/* The network interfaces, from /proc/net/dev (two header lines, then "  name: ..."). */
static void field_interfaces(void) {
    char line[512];
    FILE *f = fopen("/proc/net/dev", "re");
    key("interfaces");
    if (f == NULL) {
        json_string(result(-1), strlen(result(-1)));
        return;
    }
    fputs("[", stdout);
    int n = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        if (++lineno <= 2)
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *s = line;
        while (*s == ' ')
            s++;
        fputs(n++ ? ", " : "", stdout);
        json_string(s, strlen(s));
    }
    fclose(f);
    fputs("]", stdout);
}

/* Open each path for reading (or, with `write`, create it): "ok" or "errno N". */
static void field_reads(const char *name, char **paths, int count, int write) {
    key(name);
    fputs("{", stdout);
    for (int i = 0; i < count; i++) {
        int fd = write ? open(paths[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                       : open(paths[i], O_RDONLY | O_CLOEXEC);
        const char *r = result(fd);
        if (fd >= 0)
            close(fd);
        fputs(i ? ", " : "", stdout);
        json_string(paths[i], strlen(paths[i]));
        fputs(": ", stdout);
        json_string(r, strlen(r));
    }
    fputs("}", stdout);
}

/* The classic escape from a chroot a process may still call chroot() in: chroot into a
 * subdirectory (so the working directory is outside the new root), walk up with "..", and
 * chroot to where that ends.  The result is the step that failed, or "escaped" with the
 * root directory that was reached listed in chroot_escape_root. */
static void chroot_escape(void) {
    mkdir("/tmp/.sp-escape", 0755);
    if (chdir("/tmp") < 0) {
        field("chroot_escape", "chdir /tmp: errno");
        return;
    }
    if (chroot("/tmp/.sp-escape") < 0) {
        char buf[64];
        rmdir("/tmp/.sp-escape");
        snprintf(buf, sizeof buf, "chroot: %s", result(-1));
        field("chroot_escape", buf);
        return;
    }
    for (int i = 0; i < 64; i++)
        if (chdir("..") < 0)
            break;
    if (chroot(".") < 0) {
        char buf[64];
        snprintf(buf, sizeof buf, "second chroot: %s", result(-1));
        field("chroot_escape", buf);
        return;
    }
    rmdir("/tmp/.sp-escape");
    field("chroot_escape", "escaped");
    field_dir("chroot_escape_root", "/");
}

static void flood(FILE *f) {
    static char buf[65536];
    memset(buf, 'y', sizeof buf);
    for (;;)
        if (fwrite(buf, 1, sizeof buf, f) != sizeof buf)
            exit(1);
}

int main(int argc, char **argv) {
    char *reads[MAX_PATHS], *writes[MAX_PATHS];
    int nreads = 0, nwrites = 0;
    unsigned major_ = 7, minor_ = 0; /* loop0 unless told which disk to try */

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--read") == 0 && i + 1 < argc && nreads < MAX_PATHS)
            reads[nreads++] = argv[++i];
        else if (strcmp(argv[i], "--write") == 0 && i + 1 < argc && nwrites < MAX_PATHS)
            writes[nwrites++] = argv[++i];
        else if (strcmp(argv[i], "--blockdev") == 0 && i + 1 < argc)
            sscanf(argv[++i], "%u:%u", &major_, &minor_);
        else if (strcmp(argv[i], "--flood") == 0 && i + 1 < argc)
            flood(strcmp(argv[++i], "stderr") == 0 ? stderr : stdout);
        else {
            fprintf(stderr, "sandbox-probe: unknown argument %s\n", argv[i]);
            return 2;
        }
    }

    field_int("uid", (long)getuid());
    field_int("euid", (long)geteuid());
    field_int("gid", (long)getgid());
    field_int("pid", (long)getpid());
    status_field("cap_inh", "CapInh");
    status_field("cap_prm", "CapPrm");
    status_field("cap_eff", "CapEff");
    status_field("cap_bnd", "CapBnd");
    status_field("cap_amb", "CapAmb");
    status_field("no_new_privs", "NoNewPrivs");
    status_field("seccomp", "Seccomp");
    key("prctl_no_new_privs");
    printf("%d", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));

    struct utsname u;
    field("hostname", uname(&u) == 0 ? u.nodename : result(-1));

    /* Each attempt undoes what it managed to do, so that a run outside any sandbox leaves
     * the machine as it was. */
    mkdir("/tmp/.sp-mnt", 0755);
    int mounted = mount("none", "/tmp/.sp-mnt", "tmpfs", 0, NULL);
    field("mount_tmpfs", result(mounted));
    if (mounted == 0)
        umount2("/tmp/.sp-mnt", MNT_DETACH);
    mounted = mount("proc", "/tmp/.sp-mnt", "proc", 0, NULL);
    field("mount_proc", result(mounted));
    if (mounted == 0)
        umount2("/tmp/.sp-mnt", MNT_DETACH);
    rmdir("/tmp/.sp-mnt");
    char node[] = "/tmp/.sp-blockdev";
    int made = mknod(node, S_IFBLK | 0600, makedev(major_, minor_));
    field("mknod_block", result(made));
    if (made == 0) {
        int fd = open(node, O_RDONLY | O_CLOEXEC);
        field("open_block", result(fd));
        if (fd >= 0)
            close(fd);
        unlink(node);
    }
    int made_chr = mknod("/tmp/.sp-chardev", S_IFCHR | 0600, makedev(1, 3));
    field("mknod_char", result(made_chr));
    if (made_chr == 0)
        unlink("/tmp/.sp-chardev");

    /* A new user namespace would give the process every capability over its own mounts. */
    pid_t child = fork();
    if (child == 0)
        _exit(unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 ? 0 : errno);
    int st = 0;
    waitpid(child, &st, 0);
    char userns[32];
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        snprintf(userns, sizeof userns, "ok");
    else
        snprintf(userns, sizeof userns, "errno %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    field("unshare_user", userns);

    int wr = open("/.sp-write-test", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    field("write_root", result(wr));
    if (wr >= 0) {
        close(wr);
        unlink("/.sp-write-test");
    }
    int wt = open("/tmp/.sp-write-test", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    field("write_tmp", result(wt));
    if (wt >= 0) {
        close(wt);
        unlink("/tmp/.sp-write-test");
    }
    field_reads("read", reads, nreads, 0);
    field_reads("write", writes, nwrites, 1);
    field_dir("dev", "/dev");
    field_dir("root_entries", "/");
    field_interfaces();
    field_file("proc1_cmdline", "/proc/1/cmdline");
    field_file("self_cmdline", "/proc/self/cmdline");
    field_file("mountinfo", "/proc/self/mountinfo");
    field_file("cgroup", "/proc/self/cgroup");
    field_file("environ", "/proc/self/environ");
    /* Last: a successful escape changes this process's root for good. */
    chroot_escape();
    fputs("\n}\n", stdout);
    return 0;
}
