module scratchprobe/testbins/runtime/go-tempfile

go 1.21

require scratchprobe/testbins/runtime/go-modlib v0.1.0

replace scratchprobe/testbins/runtime/go-modlib => ../go-modlib
