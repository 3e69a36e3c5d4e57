module scratchprobe/testbins/go-static

go 1.19
