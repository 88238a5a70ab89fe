//go:build !unix

package sinks

// SyncDir makes names created, renamed or removed in dir durable where the
// system allows it. On Windows (and other systems that are not Unix) a
// directory cannot be fsynced through a file handle, and SyncDir returns
// nil: NTFS journals renames as metadata.
func SyncDir(dir string) error { return nil }
