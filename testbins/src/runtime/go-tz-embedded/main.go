// go-tz-embedded: like go-tz, but `import _ "time/tzdata"` embeds the zone
// database, so LoadLocation succeeds with no zoneinfo files in the image
// (time/zoneinfo_read.go falls back to the registered loadFromEmbeddedTZData).
package main

import (
	"fmt"
	"os"
	"time"
	_ "time/tzdata"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-tz-embedded ZONE")
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
