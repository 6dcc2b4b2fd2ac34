// The converge migration stream: constants, record layouts and the pure
// encode/parse functions shared by StreamWriter and StreamReader. Every
// field, offset and size is specified in docs/wire-format.md; all integers
// are little-endian.
//
// A stream is a 16-byte preamble (magic, version) followed by records. Every
// record is a 24-byte header (type, encoding, payload length, record index,
// checksum) and its payload. The checksum is the XXH3-64 of header bytes
// [0, 16) seeded with the payload's XXH3-64, so the long hash can be taken
// where the payload is made (on the compression workers) and framing in
// order costs 16 bytes of hashing per record.
//
// Thread-safety: the functions are pure; call them from any thread.

#ifndef CONVERGE_IO_WIRE_FORMAT_H_
#define CONVERGE_IO_WIRE_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "io/codec.h"

struct XXH3_state_s;  // xxhash.h's XXH3_state_t

namespace converge {

inline constexpr uint8_t kStreamMagic[8] = {'C', 'O', 'N', 'V',
                                            'E', 'R', 'G', 'E'};
inline constexpr uint32_t kWireVersion = 2;
inline constexpr size_t kPreambleBytes = 16;
inline constexpr size_t kRecordHeaderBytes = 24;

// Hard caps: a hostile stream can make the reader allocate at most about
// kMaxChunkBytes + kMaxRecordPayloadBytes at a time.
inline constexpr uint32_t kMaxChunkBytes = 4u << 20;  // uncompressed data
inline constexpr uint32_t kMaxRecordPayloadBytes = kMaxChunkBytes + 65536;
inline constexpr uint32_t kMaxDevices = 256;
inline constexpr uint32_t kMaxRegions = 1024;
inline constexpr uint32_t kMaxDeviceNameBytes = 255;
inline constexpr uint32_t kMaxPagesPerRamRecord = 65536;
inline constexpr uint32_t kMinPageSize = 512;
inline constexpr uint32_t kMaxPageSize = 1u << 20;

enum class RecordType : uint8_t {
  kStreamHeader = 1,
  kRam = 2,
  kDeviceData = 3,
  kIterationMark = 4,
  kEndOfDevice = 5,
  kEndOfStream = 6,
};
std::string_view RecordTypeName(RecordType type);

struct RecordHeader {
  RecordType type = RecordType::kStreamHeader;
  Codec encoding = Codec::kNone;
  uint32_t payload_bytes = 0;
  uint64_t index = 0;     // 0 for the stream header, then +1 per record
  uint64_t checksum = 0;  // RecordChecksum()
};

// Little-endian field access.
inline void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint16_t GetU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void EncodePreamble(uint8_t out[kPreambleBytes]);
// Checks magic, version and the reserved field.
[[nodiscard]] Status ParsePreamble(const uint8_t in[kPreambleBytes]);

// Writes header fields (checksum included as given).
void EncodeRecordHeader(const RecordHeader& header,
                        uint8_t out[kRecordHeaderBytes]);
// Reads the fields without validating them.
RecordHeader DecodeRecordHeader(const uint8_t in[kRecordHeaderBytes]);
// XXH3-64 (seed 0) of the payload parts, concatenated.
uint64_t PayloadXxh3(std::span<const std::span<const uint8_t>> payload);
// The record checksum: XXH3-64 of header bytes [0, 16) with the payload's
// XXH3-64 as the seed.
uint64_t RecordChecksum(const uint8_t header[kRecordHeaderBytes],
                        uint64_t payload_xxh3);
inline uint64_t RecordChecksum(
    const uint8_t header[kRecordHeaderBytes],
    std::span<const std::span<const uint8_t>> payload) {
  return RecordChecksum(header, PayloadXxh3(payload));
}

// XXH3-64 over a sequence of 64-bit values (each little-endian) or bytes,
// given one at a time: the digests of end-of-device (chunk hashes) and
// end-of-stream (record headers). A copy continues independently.
class HashChain {
 public:
  HashChain();
  ~HashChain();
  HashChain(const HashChain& other);
  HashChain& operator=(const HashChain& other);

  void Add(std::span<const uint8_t> bytes);
  void Add(uint64_t value);
  uint64_t Digest() const;

 private:
  XXH3_state_s* state_;
};

// ---- Stream header ----------------------------------------------------
struct StreamRegion {
  uint64_t gpa = 0;
  uint64_t size_bytes = 0;
  friend bool operator==(const StreamRegion&, const StreamRegion&) = default;
};
struct DeviceInfo {
  uint32_t id = 0;
  uint32_t flags = 0;
  std::string name;
  friend bool operator==(const DeviceInfo&, const DeviceInfo&) = default;
};
struct StreamLayout {
  uint32_t page_size = 4096;
  std::vector<StreamRegion> regions;
  std::vector<DeviceInfo> devices;
  friend bool operator==(const StreamLayout&, const StreamLayout&) = default;
};
// Page size a power of two in [kMinPageSize, kMaxPageSize]; regions page
// aligned, non-empty and within the caps; device ids unique; names short.
[[nodiscard]] Status ValidateLayout(const StreamLayout& layout);
// REQUIRES: ValidateLayout(layout).ok().
std::vector<uint8_t> EncodeStreamHeader(const StreamLayout& layout);
[[nodiscard]] Result<StreamLayout> ParseStreamHeader(
    std::span<const uint8_t> payload);

// ---- RAM records: a run of pages [first_page, first_page + page_count) of
// one region; zero pages are a bit in the zero map, the others follow
// (encoded) in ascending order.
inline constexpr size_t kRamFixedBytes = 24;
struct RamRecord {
  uint32_t region = 0;
  uint32_t page_count = 0;
  uint64_t first_page = 0;   // page index inside the region
  uint32_t data_pages = 0;   // pages that are not zero
  std::span<const uint8_t> zero_map;  // bit i: page first_page + i is zero
  std::span<const uint8_t> body;      // encoded data pages
};
inline bool ZeroMapTest(std::span<const uint8_t> map, uint32_t i) {
  return (map[i / 8] >> (i % 8)) & 1;
}

// A payload ready to frame: head (the fixed part, for RAM also the zero map)
// then body (compressed bytes, gathered pages, or the caller's input, which
// must then outlive the payload), with the hashes framing needs, taken by
// the encoder (on whichever thread encodes).
struct EncodedPayload {
  Codec encoding = Codec::kNone;
  std::vector<uint8_t> head;
  std::span<const uint8_t> body;
  ByteBuffer compressed;  // storage body may point into
  ByteBuffer gathered;    // storage body may point into
  uint64_t uncompressed_bytes = 0;
  uint64_t payload_xxh3 = 0;  // PayloadXxh3 of head then body
  uint64_t data_xxh3 = 0;     // device data: XXH3-64 of the uncompressed chunk
};

// Encodes page_count pages starting at pages (host memory of the region at
// first_page). Zero pages are elided; the rest are compressed with options.
// The payload never points into `pages`: guest memory may change while the
// record is checksummed and sent.
// REQUIRES: 0 < page_count <= kMaxPagesPerRamRecord, page_size valid,
// pages 8-byte aligned.
[[nodiscard]] Status EncodeRamPayload(const CodecOptions& options,
                                      uint32_t region, uint64_t first_page,
                                      uint32_t page_count, uint32_t page_size,
                                      const uint8_t* pages,
                                      EncodedPayload& out);
// Checks the payload's own consistency (sizes, zero map); range checks
// against the layout are the reader's.
[[nodiscard]] Result<RamRecord> ParseRamPayload(std::span<const uint8_t> payload,
                                                uint32_t page_size);

// ---- Device data: bytes [sequence-th chunk] of one device's data_fd stream.
inline constexpr size_t kDeviceDataFixedBytes = 16;
struct DeviceDataRecord {
  uint32_t device_id = 0;
  uint32_t uncompressed_bytes = 0;
  uint64_t sequence = 0;  // 0, 1, 2, ... per device
  std::span<const uint8_t> body;
};
// REQUIRES: 0 < data.size() <= kMaxChunkBytes.
[[nodiscard]] Status EncodeDevicePayload(const CodecOptions& options,
                                         uint32_t device_id, uint64_t sequence,
                                         std::span<const uint8_t> data,
                                         EncodedPayload& out);
[[nodiscard]] Result<DeviceDataRecord> ParseDevicePayload(
    std::span<const uint8_t> payload);

// ---- Iteration mark.
inline constexpr size_t kIterationMarkBytes = 16;
struct IterationMark {
  uint64_t iteration = 0;
  uint64_t timestamp_ns = 0;
};
std::vector<uint8_t> EncodeIterationMark(const IterationMark& mark);
[[nodiscard]] Result<IterationMark> ParseIterationMark(
    std::span<const uint8_t> payload);

// ---- End of device: totals of one device's byte stream.
inline constexpr size_t kEndOfDeviceBytes = 32;
struct EndOfDevice {
  uint32_t device_id = 0;
  uint64_t total_bytes = 0;
  uint64_t chunk_count = 0;
  uint64_t digest = 0;  // HashChain of the XXH3-64 of each chunk, in order
};
std::vector<uint8_t> EncodeEndOfDevice(const EndOfDevice& end);
[[nodiscard]] Result<EndOfDevice> ParseEndOfDevice(
    std::span<const uint8_t> payload);

// ---- End of stream: totals over everything before this record.
inline constexpr size_t kEndOfStreamFixedBytes = 32;
struct DeviceTotal {
  uint32_t device_id = 0;
  uint64_t bytes = 0;
  friend bool operator==(const DeviceTotal&, const DeviceTotal&) = default;
};
struct EndOfStream {
  uint64_t record_count = 0;  // records before this one, header included
  uint64_t ram_pages = 0;     // RAM pages sent, zero pages included
  uint64_t digest = 0;        // HashChain of the preamble and every header
  std::vector<DeviceTotal> devices;
};
std::vector<uint8_t> EncodeEndOfStream(const EndOfStream& end);
[[nodiscard]] Result<EndOfStream> ParseEndOfStream(
    std::span<const uint8_t> payload);

}  // namespace converge

#endif  // CONVERGE_IO_WIRE_FORMAT_H_
