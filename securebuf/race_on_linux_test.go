//go:build race

package securebuf

const raceEnabled = true
