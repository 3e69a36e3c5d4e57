/* c-locale: setlocale(LC_ALL, "") as most C programs start, then print the codeset the
 * locale gave and how many characters a UTF-8 string has (mbstowcs). In the C locale
 * (no locale files) setlocale fails for a LANG naming a missing locale, the codeset is
 * ANSI_X3.4-1968 and mbstowcs refuses the non-ASCII bytes. */
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *text = argc > 1 ? argv[1] : "h\xc3\xa9llo w\xc3\xb6rld";
    if (setlocale(LC_ALL, "") == NULL) {
        printf("setlocale failed\n");
        return 1;
    }
    size_t n = mbstowcs(NULL, text, 0);
    printf("%s %ld\n", nl_langinfo(CODESET), n == (size_t)-1 ? -1L : (long)n);
    return 0;
}
