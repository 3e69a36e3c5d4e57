module scratchprobe/testbins/verdict/go-ext

go 1.19
