/* libA.so.1: NEEDs libB.so.1 and carries NO rpath/runpath of its own. */
const char *b_name(void);
const char *a_name(void) { return b_name(); }
