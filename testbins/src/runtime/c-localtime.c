/* TZ=argv[1]; tzset; localtime(1700000000); strftime "%Y-%m-%d %H:%M %Z".
 * The zone file is looked up under /usr/share/zoneinfo. When it is missing, both
 * glibc and musl silently fall back to UTC and still exit 0, so a missing file
 * shows only in the output (2023-11-14 22:13 UTC instead of 23:13 CET for Paris). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s ZONE   (e.g. Europe/Paris)\n", argv[0]);
        return 2;
    }
    if (setenv("TZ", argv[1], 1) != 0) {
        perror("setenv");
        return 1;
    }
    tzset();
    time_t t = 1700000000;
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL) {
        perror("localtime_r");
        return 1;
    }
    char buf[64];
    if (strftime(buf, sizeof buf, "%Y-%m-%d %H:%M %Z", &tm) == 0) {
        fprintf(stderr, "strftime failed\n");
        return 1;
    }
    printf("%s\n", buf);
    return 0;
}
