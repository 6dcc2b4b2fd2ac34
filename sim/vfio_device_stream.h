// The bytes an emulated VFIO device streams through its data_fd, and the
// check a resuming device runs on what it was given.
//
// A saving stream is payload bytes, deterministic from (seed, content mix,
// offset), followed by a 24-byte trailer: magic, payload length and the
// payload digest (PayloadDigest). A resuming device accepts a stream only
// if it ends with a trailer that matches everything before it, as a real
// driver rejects incomplete device state.
//
// The payload is made of 4 KiB blocks that live in process-wide immutable
// memory (zero pages, a text corpus, a pool of random pages), each with its
// XXH3-64 computed once. A saving device therefore hands the kernel pointers
// to its state (vmsplice) and adds precomputed block hashes to its digest,
// as a real device holds its state in its own memory: the host CPU pays for
// the read() that copies it out, not for making it.
//
// Thread-safety: DeviceStateContent is immutable after construction and may
// be shared. PayloadDigest and StreamVerifier are not thread-safe.

#ifndef CONVERGE_SIM_VFIO_DEVICE_STREAM_H_
#define CONVERGE_SIM_VFIO_DEVICE_STREAM_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/status.h"
#include "io/wire_format.h"

namespace converge::sim {

// What device state looks like, by 4 KiB block. Fractions in [0, 1] whose
// sum is at most 1; the rest of the blocks are random (incompressible).
struct ContentMix {
  double zero_fraction = 0.25;  // all-zero blocks
  double text_fraction = 0.35;  // text-like blocks (lz4 shrinks them ~2-3x)
};

// Device-state bytes: block k (bytes [4096 k, 4096 k + 4096)) depends only
// on the seed, the mix and k. A block is all zero, a 4 KiB window of a
// 1 MiB text-like corpus (lz4 shrinks it 2-3x), or a page of a 16 MiB pool
// of random pages (incompressible: any 16 MiB of one stream holds no page
// twice). The first use builds the corpus, the pool and their hashes
// (about 100 MiB hashed, tens of milliseconds) for the whole process.
class DeviceStateContent {
 public:
  static constexpr uint64_t kBlockBytes = 4096;

  // One block: its bytes (valid, and never changed, for the life of the
  // process) and their XXH3-64.
  struct Block {
    const uint8_t* data;
    uint64_t hash;
  };

  // REQUIRES: the mix fractions are in [0, 1] and sum to at most 1.
  DeviceStateContent(uint64_t seed, ContentMix mix);

  Block BlockAt(uint64_t block) const;

  // Copies stream bytes [offset, offset + out.size()) into out.
  void Fill(uint64_t offset, std::span<uint8_t> out) const;

 private:
  uint64_t seed_;
  uint64_t zero_below_;  // block kind thresholds on a 64-bit hash
  uint64_t text_below_;
  uint64_t random_offset_;  // where the stream's walk of random pages starts
};

// The 24 bytes that end every saving stream (little-endian on the wire).
struct StreamTrailer {
  static constexpr uint64_t kMagic = 0x5453564544475643ull;  // "CVGDEVST"
  static constexpr size_t kBytes = 24;

  uint64_t payload_bytes = 0;
  uint64_t payload_digest = 0;  // PayloadDigest of the payload

  std::array<uint8_t, kBytes> Encode() const;
  // The trailer in bytes, or nullopt when the magic does not match.
  static std::optional<StreamTrailer> Decode(std::span<const uint8_t, kBytes> bytes);
};

// The digest of a device payload: XXH3-64 over the little-endian XXH3-64s
// of its 4 KiB blocks in order, the last block possibly short. Every byte
// counts and so does the order, yet a block's hash can be computed ahead
// (AddBlock).
class PayloadDigest {
 public:
  // Appends bytes given in arbitrary pieces.
  void Update(std::span<const uint8_t> bytes);
  // Appends one whole block whose XXH3-64 is block_hash.
  // REQUIRES: bytes() is a multiple of the block size.
  void AddBlock(uint64_t block_hash);
  uint64_t bytes() const { return bytes_; }
  uint64_t Digest() const;

 private:
  static constexpr size_t kBlockBytes = DeviceStateContent::kBlockBytes;

  HashChain chain_;  // of the whole blocks' hashes
  std::array<uint8_t, kBlockBytes> partial_;  // the block being filled
  size_t partial_bytes_ = 0;
  uint64_t bytes_ = 0;
};

// Checks a stream given in arbitrary pieces: hashes everything but the last
// 24 bytes seen, which must be a matching trailer when the stream ends.
class StreamVerifier {
 public:
  void Update(std::span<const uint8_t> bytes);
  // OK when the stream seen so far is complete and intact; otherwise a
  // kCorrupt error saying what is wrong (too short, no trailer, length or
  // hash mismatch).
  Status Finish() const;
  uint64_t bytes_seen() const { return digest_.bytes() + tail_len_; }
  // PayloadDigest of the payload (everything before the trailer).
  uint64_t payload_hash() const { return digest_.Digest(); }

 private:
  PayloadDigest digest_;
  std::array<uint8_t, StreamTrailer::kBytes> tail_{};
  size_t tail_len_ = 0;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_VFIO_DEVICE_STREAM_H_
