package main

import "runtime/debug"

func version() string {
	v := "verdict (devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v = "verdict " + s.Value[:12]
			}
		}
		v += " " + bi.GoVersion
	}
	return v
}
