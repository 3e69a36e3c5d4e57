// go-user: os/user.Lookup(argv[1]) and print uid, gid and home.
// Built three ways: CGO_ENABLED=0 (pure Go, reads /etc/passwd itself),
// CGO_ENABLED=1 (getpwnam_r in libc, so glibc NSS decides which files are
// read) and CGO_ENABLED=1 -tags osusergo (pure Go again, and no libc at all).
package main

import (
	"fmt"
	"os"
	"os/user"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-user NAME")
		os.Exit(2)
	}
	u, err := user.Lookup(os.Args[1])
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("uid=%s gid=%s home=%s\n", u.Uid, u.Gid, u.HomeDir)
}
