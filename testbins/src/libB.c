/* libB.so.1: leaf library of the rpath-inherit / runpath-not-inherited chains. */
const char *b_name(void) { return "libB"; }
