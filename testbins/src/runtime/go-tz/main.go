// go-tz: time.LoadLocation(argv[1]) and print one fixed instant in that zone.
// Without time/tzdata linked the zone must come from the system zoneinfo
// directories (time/zoneinfo_unix.go platformZoneSources) or $ZONEINFO.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-tz ZONE")
		os.Exit(2)
	}
	loc, err := time.LoadLocation(os.Args[1])
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	instant := time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC).In(loc)
	fmt.Println(instant.Format("2006-01-02T15:04:05 -0700 MST"))
}
