// The bytes an emulated VFIO device streams through its data_fd, and the
// check a resuming device runs on what it was given.
//
// A saving stream is payload bytes, deterministic from (seed, content mix,
// offset), followed by a 24-byte trailer: magic, payload length and the
// XXH3-64 of the payload. A resuming device accepts a stream only if it
// ends with a trailer that matches everything before it, as a real driver
// rejects incomplete device state.
//
// Thread-safety: DeviceStateContent is immutable after construction and may
// be shared. StreamHasher and StreamVerifier are not thread-safe.

#ifndef CONVERGE_SIM_VFIO_DEVICE_STREAM_H_
#define CONVERGE_SIM_VFIO_DEVICE_STREAM_H_

#include <xxhash.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/status.h"

namespace converge::sim {

// What device state looks like, by 4 KiB block. Fractions in [0, 1] whose
// sum is at most 1; the rest of the blocks are random (incompressible).
struct ContentMix {
  double zero_fraction = 0.25;  // all-zero blocks
  double text_fraction = 0.35;  // text-like blocks (lz4 shrinks them ~2-3x)
};

// Generates device-state bytes: byte k depends only on the seed, the mix
// and k. Cost: several GB/s per thread (random blocks are the slowest);
// the first text block builds a 1 MiB corpus shared by every instance.
class DeviceStateContent {
 public:
  static constexpr uint64_t kBlockBytes = 4096;

  // REQUIRES: the mix fractions are in [0, 1] and sum to at most 1.
  DeviceStateContent(uint64_t seed, ContentMix mix);

  // Writes stream bytes [offset, offset + out.size()) into out.
  void Fill(uint64_t offset, std::span<uint8_t> out) const;

 private:
  void FillBlock(uint64_t block, uint8_t* out) const;

  uint64_t seed_;
  uint64_t zero_below_;  // block kind thresholds on a 64-bit hash
  uint64_t text_below_;
};

// The 24 bytes that end every saving stream (little-endian on the wire).
struct StreamTrailer {
  static constexpr uint64_t kMagic = 0x5453564544475643ull;  // "CVGDEVST"
  static constexpr size_t kBytes = 24;

  uint64_t payload_bytes = 0;
  uint64_t payload_xxh3 = 0;

  std::array<uint8_t, kBytes> Encode() const;
  // The trailer in bytes, or nullopt when the magic does not match.
  static std::optional<StreamTrailer> Decode(std::span<const uint8_t, kBytes> bytes);
};

// Streaming XXH3-64. Non-copyable (owns the hash state).
class StreamHasher {
 public:
  StreamHasher();
  ~StreamHasher();
  StreamHasher(const StreamHasher&) = delete;
  StreamHasher& operator=(const StreamHasher&) = delete;

  void Update(std::span<const uint8_t> bytes);
  uint64_t bytes() const { return bytes_; }
  uint64_t Digest() const;

 private:
  XXH3_state_t* state_;
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
  uint64_t bytes_seen() const { return hasher_.bytes() + tail_len_; }
  // XXH3-64 of the payload (everything before the trailer).
  uint64_t payload_hash() const { return hasher_.Digest(); }

 private:
  StreamHasher hasher_;
  std::array<uint8_t, StreamTrailer::kBytes> tail_{};
  size_t tail_len_ = 0;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_VFIO_DEVICE_STREAM_H_
