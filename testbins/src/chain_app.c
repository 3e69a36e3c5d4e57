/* rpath-inherit/app and runpath-not-inherited/app: NEEDs libA.so.1 -> libB.so.1 */
#include <stdio.h>
#ifndef NAME
#define NAME "chain"
#endif
const char *a_name(void);
int main(void) {
    printf("hello from %s (libA -> %s)\n", NAME, a_name());
    return 0;
}
