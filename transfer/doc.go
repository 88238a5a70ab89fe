// Package transfer moves enc-pipe streams between stores: local files and
// directories, and S3 objects and prefixes.
//
//   - [DecryptRange] decrypts a byte range of an uncompressed stream held
//     in an object that can be read at any offset (an S3 object through
//     package s3source, or a file), reading only the header, the final
//     chunk and the chunks that hold the range.
//   - [Runner] runs one job per object under an S3 prefix or a local
//     directory (encrypt or decrypt, supplied by the caller), several at a
//     time, mapping names one to one. A failed object is reported and the
//     others go on; a rerun skips the objects that an earlier run already
//     wrote, so an interrupted job can be resumed.
//
// The package glues package encpipe to the sources and sinks; it holds no
// key and writes nothing but what its jobs write.
package transfer
