"""scratchprobe: the files a FROM scratch image needs for an ELF binary, found statically."""

__version__ = "0.1.0"
