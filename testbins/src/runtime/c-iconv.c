/* iconv_open(TARGET_CHARSET, "UTF-8"), convert argv[1] (default "h\xc3\xa9llo")
 * and print the result as hex bytes.
 * glibc builds in only UTF-8/UCS-2/UCS-4/ASCII converters; any other charset is a
 * gconv module (.so) found through gconv-modules(.cache) and dlopen'd.
 * Built twice: TARGET_CHARSET "ISO-8859-1" (c-iconv, c-iconv-static) and
 * "IBM037" (c-iconv-ebcdic), an EBCDIC code page. */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <string.h>

#ifndef TARGET_CHARSET
#define TARGET_CHARSET "ISO-8859-1"
#endif

int main(int argc, char **argv) {
    char *in = argc > 1 ? argv[1] : "h\xc3\xa9llo";
    iconv_t cd = iconv_open(TARGET_CHARSET, "UTF-8");
    if (cd == (iconv_t)-1) {
        fprintf(stderr, "iconv_open(%s, UTF-8) failed: %s\n", TARGET_CHARSET, strerror(errno));
        return 1;
    }
    char out[256];
    char *inp = in, *outp = out;
    size_t inleft = strlen(in), outleft = sizeof out;
    if (iconv(cd, &inp, &inleft, &outp, &outleft) == (size_t)-1) {
        fprintf(stderr, "iconv to %s failed: %s\n", TARGET_CHARSET, strerror(errno));
        iconv_close(cd);
        return 1;
    }
    iconv_close(cd);
    printf("%s:", TARGET_CHARSET);
    for (const char *p = out; p < outp; p++)
        printf(" %02x", (unsigned char)*p);
    printf("\n");
    return 0;
}
