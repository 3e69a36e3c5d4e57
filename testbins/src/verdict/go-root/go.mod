module scratchprobe/testbins/verdict/go-root

go 1.19
