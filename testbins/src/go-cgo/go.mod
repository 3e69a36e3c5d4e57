module scratchprobe/testbins/go-cgo

go 1.19
