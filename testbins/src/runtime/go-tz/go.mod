module scratchprobe/testbins/runtime/go-tz

go 1.21
