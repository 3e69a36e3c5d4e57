module scratchprobe/testbins/runtime/go-tz-embedded

go 1.21
