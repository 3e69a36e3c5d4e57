module scratchprobe/testbins/runtime/go-modlib

go 1.21
