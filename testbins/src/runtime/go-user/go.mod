module scratchprobe/testbins/runtime/go-user

go 1.21
