module scratchprobe/testbins/runtime/go-https-get

go 1.19
