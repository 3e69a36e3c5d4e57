/* dlopen(argv[1]) a library whose name exists only at run time; print "ok".
 * This is the case static analysis cannot follow: nothing in the ELF file
 * names the library. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s LIBRARY\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlopen(%s) failed: %s\n", argv[1], dlerror());
        return 1;
    }
    dlclose(h);
    printf("ok\n");
    return 0;
}
