module scratchprobe/testbins/runtime/go-user-lookup

go 1.19
