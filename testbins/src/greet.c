/* libgreet.so.1: tiny shared library used by the $ORIGIN RUNPATH test. */
#include <stdio.h>
void greet(const char *who) {
    printf("hello from %s (via libgreet)\n", who);
}
