// go-https-get: GET the URL in argv[1] with net/http and print the status and
// the body. TLS verification uses the system roots (crypto/x509 reads the CA
// files of root_linux.go), so inside a scratch image it works only when the CA
// bundle was copied in. Built with CGO_ENABLED=0 by the newest Go and, as
// go119-https-get, by Go 1.19 (go.mod says 1.19 so both toolchains accept it).
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-https-get URL")
		os.Exit(2)
	}
	resp, err := http.Get(os.Args[1])
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("status %d\n", resp.StatusCode)
	os.Stdout.Write(body)
}
