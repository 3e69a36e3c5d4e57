// Package modlib is a local module that go-tempfile pulls in through a
// `replace` directive, only so that a real binary carries `dep` and `=>`
// lines in its build info (runtime/debug/mod.go).
package modlib

// Payload is the text go-tempfile writes to its temporary file.
func Payload() string { return "scratchprobe temp file payload\n" }
