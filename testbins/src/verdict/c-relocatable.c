/* c-relocatable: a relocatable program that finds its data from its own path, as
 * self-contained distributions do. It reads /proc/self/exe, then
 *   share   -> PREFIX/share/relocdemo-1.0/greeting.txt (PREFIX = the directory above bin/)
 *   tables  -> searches upward from its directory for lib/ holding tables/words.txt
 * and prints the first line of the file it found. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int print_first_line(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("cannot open %s\n", path);
        return 1;
    }
    char line[256];
    if (fgets(line, sizeof line, f) == NULL) {
        fclose(f);
        return 1;
    }
    fclose(f);
    fputs(line, stdout);
    return 0;
}

int main(int argc, char **argv) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) {
        perror("readlink");
        return 1;
    }
    exe[n] = '\0';
    char dir[PATH_MAX], path[PATH_MAX * 2];
    strcpy(dir, dirname(exe));
    if (argc > 1 && strcmp(argv[1], "tables") == 0) {
        for (int up = 0; up < 4; up++) {
            snprintf(path, sizeof path, "%s/lib/%s", dir, "tables/words.txt");
            if (access(path, R_OK) == 0)
                return print_first_line(path);
            strcpy(dir, dirname(dir));
        }
        printf("no tables/words.txt in a lib directory above the program\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/../share/relocdemo-1.0/greeting.txt", dir);
    return print_first_line(path);
}
