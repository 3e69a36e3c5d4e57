module scratchprobe/testbins/runtime/go-lookup

go 1.21
