/* c-runpath-origin/bin/app: needs libgreet.so.1 found via RUNPATH $ORIGIN/../lib */
void greet(const char *who);
int main(void) {
    greet("c-runpath-origin");
    return 0;
}
