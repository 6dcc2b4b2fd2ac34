// Chunk codecs: none, lz4 (default) and zstd at a chosen level, plus the
// zero-page check used to elide pages of all zeros.
//
// A chunk that does not shrink is sent raw: EncodeChunk() reports the
// encoding it actually used, and that value travels on the wire.
//
// Thread-safety: the free functions are safe to call from any number of
// threads at once (zstd contexts are per thread).

#ifndef CONVERGE_IO_CODEC_H_
#define CONVERGE_IO_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/byte_buffer.h"
#include "base/status.h"

namespace converge {

// The numeric values are the wire encoding (docs/wire-format.md).
enum class Codec : uint8_t {
  kNone = 0,
  kLz4 = 1,
  kZstd = 2,
};

std::string_view CodecName(Codec codec);

struct CodecOptions {
  // lz4 compresses ~700 MB/s per core; zstd level 1 ~500 MB/s with a better
  // ratio; higher zstd levels cost much more CPU per byte.
  Codec codec = Codec::kLz4;
  // zstd only: 1..19. Ignored by the other codecs.
  int zstd_level = 1;
};

// Compresses input with options.codec into out (resized to the encoded
// length). Returns the encoding used: options.codec, or kNone when the
// result would not be smaller (out is then left empty and the caller sends
// input as is).
[[nodiscard]] Result<Codec> EncodeChunk(const CodecOptions& options,
                                        std::span<const uint8_t> input,
                                        ByteBuffer& out);

// Decodes input (encoded with encoding) into out, which must be exactly the
// uncompressed length: any other decoded size is kCorrupt.
[[nodiscard]] Status DecodeChunk(Codec encoding,
                                 std::span<const uint8_t> input,
                                 std::span<uint8_t> out);

// True when every byte of [data, data + bytes) is zero. Word-wise OR of
// 64-byte blocks with an early exit at the first non-zero block.
// REQUIRES: bytes % 8 == 0 and data is 8-byte aligned.
bool IsZeroPage(const void* data, size_t bytes);

}  // namespace converge

#endif  // CONVERGE_IO_CODEC_H_
