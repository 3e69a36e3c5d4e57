from scratchprobe.cli import main

main()
