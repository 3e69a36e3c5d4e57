/* Generic hello used for most C variants; NAME is set with -DNAME="..." */
#include <stdio.h>
#ifndef NAME
#define NAME "c"
#endif
int main(void) {
    puts("hello from " NAME);
    return 0;
}
