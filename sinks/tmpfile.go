package sinks

import "errors"

// unnamedEnabled lets tests force the named-temporary path that systems
// without O_TMPFILE take.
var unnamedEnabled = true

var errUnnamedOff = errors.New("sinks: unnamed temporary files are not available")
