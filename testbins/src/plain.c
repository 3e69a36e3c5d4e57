/* libplain.so.1: a plain shared library (ET_DYN, SONAME, no PT_INTERP, no
 * DF_1_PIE).  It calls into libc so that it NEEDs libc.so.6 like a typical
 * library does. */
#include <stdio.h>
int plain_answer(void) {
    puts("hello from libplain");
    return 42;
}
