/* c-iconv-runtime: convert UTF-8 text to the charset named on the command line and print
 * the bytes in hex, as a program that reads charset names from its arguments, input or
 * configuration does: no charset name is in its data. Usage: c-iconv-runtime CHARSET TEXT */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CHARSET TEXT\n", argv[0]);
        return 2;
    }
    iconv_t cd = iconv_open(argv[1], "UTF-8");
    if (cd == (iconv_t)-1) {
        printf("iconv_open(%s): %s\n", argv[1], strerror(errno));
        return 1;
    }
    char out[256];
    char *in = argv[2], *to = out;
    size_t inleft = strlen(argv[2]), outleft = sizeof out;
    if (iconv(cd, &in, &inleft, &to, &outleft) == (size_t)-1) {
        printf("iconv: %s\n", strerror(errno));
        return 1;
    }
    printf("%s:", argv[1]);
    for (char *p = out; p < to; p++)
        printf(" %02x", (unsigned char)*p);
    printf("\n");
    iconv_close(cd);
    return 0;
}
