"""`scratchprobe image`: the plan written as a runnable OCI image, without a daemon.

One module per concern: `platform` (os/architecture/variant from the ELF files), `layers`
(the plan split into shareable layers, each a reproducible tar), `config` (the image
configuration), `packages` (package-database entries for scanners), `layout` (OCI image
layout and OCI archive), `docker_archive` (what `docker load` reads), `build` (the whole
job, from inspections to a written image). docs/image.md describes the format choices.
"""
