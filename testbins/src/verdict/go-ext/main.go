// go-ext: one program that reads each runtime file the Go standard library opens,
// built by tests/proof/runtime/test_runtime_proof_verdict.py with an external linker
// (`-buildmode=pie -ldflags=-linkmode=external`), which merges .gopclntab into
// .data.rel.ro. Usage: go-ext get URL | zone NAME | temp
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-ext get URL | zone NAME | temp")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "get":
		resp, err := http.Get(os.Args[2])
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("status %d\n", resp.StatusCode)
		os.Stdout.Write(body)
	case "zone":
		loc, err := time.LoadLocation(os.Args[2])
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		instant := time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC).In(loc)
		fmt.Println(instant.Format("2006-01-02T15:04:05 -0700 MST"))
	case "temp":
		f, err := os.CreateTemp("", "go-ext-")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		f.Close()
		os.Remove(f.Name())
		fmt.Println("ok")
	default:
		os.Exit(2)
	}
}
