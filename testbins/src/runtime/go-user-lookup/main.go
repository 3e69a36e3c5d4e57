// go-user-lookup: os/user.Lookup(argv[1]), then net.LookupHost(argv[2]); prints the
// user's uid and home, then the sorted addresses.
// Built with CGO_ENABLED=1 -tags osusergo: os/user is pure Go (reads /etc/passwd itself)
// while net keeps its cgo resolver (getaddrinfo in libc), so cgo is linked and the
// program needs libc: the build setting and what is linked disagree per package.
package main

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"sort"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go-user-lookup USER HOST")
		os.Exit(2)
	}
	u, err := user.Lookup(os.Args[1])
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("uid=%s home=%s\n", u.Uid, u.HomeDir)
	addrs, err := net.LookupHost(os.Args[2])
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		fmt.Println(a)
	}
}
