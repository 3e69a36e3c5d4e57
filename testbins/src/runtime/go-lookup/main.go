// go-lookup: net.LookupHost(argv[1]) and print the sorted addresses.
// Built three ways: CGO_ENABLED=0 (pure Go resolver only), CGO_ENABLED=1 (the
// cgo resolver, getaddrinfo in libc, is linked and chosen per net/conf.go) and
// CGO_ENABLED=1 -tags netgo (pure Go resolver, no libc).
package main

import (
	"fmt"
	"net"
	"os"
	"sort"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-lookup NAME")
		os.Exit(2)
	}
	addrs, err := net.LookupHost(os.Args[1])
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		fmt.Println(a)
	}
}
