/* Calls strlcpy, which glibc versions GLIBC_2.38: a binary linked against a newer glibc
 * than the root provides, so the loader would fail with "version `GLIBC_2.38' not found". */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    char buf[16];
    strlcpy(buf, argc > 1 ? argv[1] : "hello", sizeof buf);
    puts(buf);
    return 0;
}
