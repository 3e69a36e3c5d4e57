// go-tempfile: os.CreateTemp("", "x") in os.TempDir() ($TMPDIR or /tmp), write,
// read back, remove, print "ok". A scratch image has no /tmp unless one is made.
// It also imports a local module through a `replace` directive, so its build
// info carries a `dep` line followed by a `=>` replacement line.
package main

import (
	"fmt"
	"os"

	"scratchprobe/testbins/runtime/go-modlib"
)

func main() {
	f, err := os.CreateTemp("", "x")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	name := f.Name()
	defer os.Remove(name)
	payload := modlib.Payload()
	if _, err := f.WriteString(payload); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	back, err := os.ReadFile(name)
	if err != nil || string(back) != payload {
		fmt.Println("error: read back", err)
		os.Exit(1)
	}
	if err := os.Remove(name); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ok")
}
