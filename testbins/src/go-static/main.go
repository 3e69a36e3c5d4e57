// go-static: pure Go (CGO_ENABLED=0), fully static.
package main

import (
	"fmt"
	"os"
)

func main() {
	if _, err := os.Hostname(); err != nil {
		// hostname is only touched to pull in some os code; output stays deterministic
		fmt.Fprintln(os.Stderr, "hostname error:", err)
	}
	fmt.Println("hello from go-static")
}
