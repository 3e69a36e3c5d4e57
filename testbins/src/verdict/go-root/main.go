// go-root: a toolchain-style program that finds its root from its own path, as cmd/go
// does when built with -trimpath (no GOROOT baked in): the directory above bin/ that
// holds pkg/tool. It prints the root's VERSION and whether the standard library's
// runtime sources are there.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	exe, err := os.Executable()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	root := filepath.Dir(filepath.Dir(exe))
	if _, err := os.Stat(filepath.Join(root, "pkg", "tool")); err != nil {
		fmt.Println("cannot find the Go root:", err)
		os.Exit(1)
	}
	version, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if _, err := os.Stat(filepath.Join(root, "src", "runtime")); err != nil {
		fmt.Println("no runtime sources:", err)
		os.Exit(1)
	}
	fmt.Printf("root %s\n", version)
}
