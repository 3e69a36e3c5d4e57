"""Reading an existing image (`--from-image REF`) as the builder's root.

`reference` opens REF (an OCI image layout directory, an OCI archive, a docker-archive, or a
local image by name through skopeo or podman) and picks the platform's manifest; `unpack`
applies its layers in order into a private temporary directory without trusting the archive;
`config` reads the image configuration; `entry` resolves the entry point to the binaries to
analyse; `slim` compares the original with the slim image. docs/slim.md has the rules.
"""
