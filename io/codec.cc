#include "io/codec.h"

#include <lz4.h>
#include <zstd.h>

#include <cassert>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

namespace converge {
namespace {

struct ZstdCCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct ZstdDCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// One context per thread: creating a zstd context per chunk costs more than
// compressing a small chunk.
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, ZstdCCtxFree> cctx(ZSTD_createCCtx());
  return cctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, ZstdDCtxFree> dctx(ZSTD_createDCtx());
  return dctx.get();
}

}  // namespace

std::string_view CodecName(Codec codec) {
  switch (codec) {
    case Codec::kNone: return "none";
    case Codec::kLz4: return "lz4";
    case Codec::kZstd: return "zstd";
  }
  return "unknown";
}

Result<Codec> EncodeChunk(const CodecOptions& options,
                          std::span<const uint8_t> input,
                          ByteBuffer& out) {
  out.clear();
  if (options.codec == Codec::kNone || input.size() < 64) return Codec::kNone;
  if (input.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return InvalidArgumentError("chunk of " + std::to_string(input.size()) +
                                " bytes is too large to compress");
  }
  // Only a result strictly smaller than the input is worth sending.
  const size_t limit = input.size() - 1;
  switch (options.codec) {
    case Codec::kLz4: {
      out.resize(limit);
      int n = LZ4_compress_default(reinterpret_cast<const char*>(input.data()),
                                   reinterpret_cast<char*>(out.data()),
                                   static_cast<int>(input.size()),
                                   static_cast<int>(limit));
      if (n <= 0) {  // does not fit in limit: incompressible
        out.clear();
        return Codec::kNone;
      }
      out.resize(static_cast<size_t>(n));
      return Codec::kLz4;
    }
    case Codec::kZstd: {
      if (options.zstd_level < 1 || options.zstd_level > ZSTD_maxCLevel()) {
        return InvalidArgumentError("zstd level " +
                                    std::to_string(options.zstd_level) +
                                    " outside [1, " +
                                    std::to_string(ZSTD_maxCLevel()) + "]");
      }
      out.resize(limit);
      size_t n = ZSTD_compressCCtx(ThreadCCtx(), out.data(), limit,
                                   input.data(), input.size(),
                                   options.zstd_level);
      if (ZSTD_isError(n)) {  // dstSize_tooSmall: incompressible
        out.clear();
        return Codec::kNone;
      }
      out.resize(n);
      return Codec::kZstd;
    }
    case Codec::kNone:
      break;
  }
  return InvalidArgumentError("unknown codec " +
                              std::to_string(static_cast<int>(options.codec)));
}

Status DecodeChunk(Codec encoding, std::span<const uint8_t> input,
                   std::span<uint8_t> out) {
  switch (encoding) {
    case Codec::kNone:
      if (input.size() != out.size()) {
        return CorruptError("raw chunk of " + std::to_string(input.size()) +
                            " bytes, expected " + std::to_string(out.size()));
      }
      if (!out.empty()) std::memcpy(out.data(), input.data(), out.size());
      return OkStatus();
    case Codec::kLz4: {
      if (input.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
          out.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
        return CorruptError("lz4 chunk too large");
      }
      int n = LZ4_decompress_safe(reinterpret_cast<const char*>(input.data()),
                                  reinterpret_cast<char*>(out.data()),
                                  static_cast<int>(input.size()),
                                  static_cast<int>(out.size()));
      if (n < 0) return CorruptError("lz4 chunk does not decode");
      if (static_cast<size_t>(n) != out.size()) {
        return CorruptError("lz4 chunk decodes to " + std::to_string(n) +
                            " bytes, expected " + std::to_string(out.size()));
      }
      return OkStatus();
    }
    case Codec::kZstd: {
      size_t n = ZSTD_decompressDCtx(ThreadDCtx(), out.data(), out.size(),
                                     input.data(), input.size());
      if (ZSTD_isError(n)) {
        return CorruptError(std::string("zstd chunk does not decode: ") +
                            ZSTD_getErrorName(n));
      }
      if (n != out.size()) {
        return CorruptError("zstd chunk decodes to " + std::to_string(n) +
                            " bytes, expected " + std::to_string(out.size()));
      }
      return OkStatus();
    }
  }
  return CorruptError("unknown encoding " +
                      std::to_string(static_cast<int>(encoding)));
}

bool IsZeroPage(const void* data, size_t bytes) {
  assert(bytes % 8 == 0);
  assert(reinterpret_cast<uintptr_t>(data) % 8 == 0);
  const uint64_t* w = static_cast<const uint64_t*>(data);
  const size_t n = bytes / 8;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {  // one 64-byte block per step, early exit
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] |
         w[i + 6] | w[i + 7]) != 0) {
      return false;
    }
  }
  uint64_t acc = 0;
  for (; i < n; ++i) acc |= w[i];
  return acc == 0;
}

}  // namespace converge
