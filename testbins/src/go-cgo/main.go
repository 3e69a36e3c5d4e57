// go-cgo: CGO_ENABLED=1 with a minimal `import "C"` call, so the binary is
// dynamically linked against glibc (DT_NEEDED libc.so.6).
package main

/*
#include <stdlib.h>
static int cgo_answer(void) { return abs(-42); }
*/
import "C"

import "fmt"

func main() {
	fmt.Printf("hello from go-cgo (%d)\n", int(C.cgo_answer()))
}
