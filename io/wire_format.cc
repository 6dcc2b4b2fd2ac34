#include "io/wire_format.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <array>
#include <bit>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <set>

namespace converge {
namespace {

std::string Bytes(size_t n) { return std::to_string(n) + " bytes"; }

Status WrongSize(std::string_view what, size_t got, size_t want) {
  return CorruptError(std::string(what) + " payload is " + Bytes(got) +
                      ", expected " + Bytes(want));
}

}  // namespace

std::string_view RecordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kStreamHeader: return "stream-header";
    case RecordType::kRam: return "ram";
    case RecordType::kDeviceData: return "device-data";
    case RecordType::kIterationMark: return "iteration-mark";
    case RecordType::kEndOfDevice: return "end-of-device";
    case RecordType::kEndOfStream: return "end-of-stream";
  }
  return "unknown";
}

void EncodePreamble(uint8_t out[kPreambleBytes]) {
  std::memcpy(out, kStreamMagic, sizeof(kStreamMagic));
  PutU32(out + 8, kWireVersion);
  PutU32(out + 12, 0);
}

Status ParsePreamble(const uint8_t in[kPreambleBytes]) {
  if (std::memcmp(in, kStreamMagic, sizeof(kStreamMagic)) != 0) {
    return CorruptError("bad magic at byte offset 0: not a converge stream");
  }
  const uint32_t version = GetU32(in + 8);
  if (version != kWireVersion) {
    return CorruptError("unknown version " + std::to_string(version) +
                        " at byte offset 8 (this reader speaks version " +
                        std::to_string(kWireVersion) + ")");
  }
  if (GetU32(in + 12) != 0) {
    return CorruptError("preamble reserved field at byte offset 12 not zero");
  }
  return OkStatus();
}

void EncodeRecordHeader(const RecordHeader& h, uint8_t out[kRecordHeaderBytes]) {
  out[0] = static_cast<uint8_t>(h.type);
  out[1] = static_cast<uint8_t>(h.encoding);
  PutU16(out + 2, 0);
  PutU32(out + 4, h.payload_bytes);
  PutU64(out + 8, h.index);
  PutU64(out + 16, h.checksum);
}

RecordHeader DecodeRecordHeader(const uint8_t in[kRecordHeaderBytes]) {
  RecordHeader h;
  h.type = static_cast<RecordType>(in[0]);
  h.encoding = static_cast<Codec>(in[1]);
  h.payload_bytes = GetU32(in + 4);
  h.index = GetU64(in + 8);
  h.checksum = GetU64(in + 16);
  return h;
}

uint64_t PayloadXxh3(std::span<const std::span<const uint8_t>> payload) {
  if (payload.size() == 1) {
    return XXH3_64bits(payload[0].data(), payload[0].size());
  }
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  for (const auto& part : payload) {
    if (!part.empty()) XXH3_64bits_update(&state, part.data(), part.size());
  }
  return XXH3_64bits_digest(&state);
}

uint64_t RecordChecksum(const uint8_t header[kRecordHeaderBytes],
                        uint64_t payload_xxh3) {
  return XXH3_64bits_withSeed(header, 16, payload_xxh3);
}

HashChain::HashChain() : state_(XXH3_createState()) {
  if (state_ == nullptr) std::abort();
  XXH3_64bits_reset(state_);
}

HashChain::~HashChain() { XXH3_freeState(state_); }

HashChain::HashChain(const HashChain& other) : HashChain() { *this = other; }

HashChain& HashChain::operator=(const HashChain& other) {
  if (this != &other) {
    XXH3_copyState(state_, other.state_);
  }
  return *this;
}

void HashChain::Add(std::span<const uint8_t> bytes) {
  XXH3_64bits_update(state_, bytes.data(), bytes.size());
}

void HashChain::Add(uint64_t value) {
  uint8_t le[8];
  PutU64(le, value);
  Add(le);
}

uint64_t HashChain::Digest() const {
  return XXH3_64bits_digest(state_);
}

// ---- Stream header ----------------------------------------------------
// u32 page_size, u32 region_count, u32 device_count, u32 reserved;
// regions: u64 gpa, u64 size_bytes; devices: u32 id, u32 flags,
// u16 name_bytes, u16 reserved, name.

Status ValidateLayout(const StreamLayout& layout) {
  const uint32_t ps = layout.page_size;
  if (!std::has_single_bit(ps) || ps < kMinPageSize || ps > kMaxPageSize) {
    return InvalidArgumentError("page size " + std::to_string(ps) +
                                " is not a power of two in [512, 1 MiB]");
  }
  if (layout.regions.size() > kMaxRegions) {
    return InvalidArgumentError(std::to_string(layout.regions.size()) +
                                " regions, at most " +
                                std::to_string(kMaxRegions));
  }
  if (layout.devices.size() > kMaxDevices) {
    return InvalidArgumentError(std::to_string(layout.devices.size()) +
                                " devices, at most " +
                                std::to_string(kMaxDevices));
  }
  for (size_t i = 0; i < layout.regions.size(); ++i) {
    const StreamRegion& r = layout.regions[i];
    if (r.size_bytes == 0 || r.gpa % ps != 0 || r.size_bytes % ps != 0 ||
        r.gpa + r.size_bytes < r.gpa) {
      return InvalidArgumentError(
          "region " + std::to_string(i) + " (gpa " + std::to_string(r.gpa) +
          ", " + Bytes(r.size_bytes) + ") is empty, unaligned or wraps");
    }
  }
  std::set<uint32_t> ids;
  for (const DeviceInfo& d : layout.devices) {
    if (!ids.insert(d.id).second) {
      return InvalidArgumentError("device id " + std::to_string(d.id) +
                                  " listed twice");
    }
    if (d.name.size() > kMaxDeviceNameBytes) {
      return InvalidArgumentError("device " + std::to_string(d.id) +
                                  " name longer than 255 bytes");
    }
  }
  return OkStatus();
}

std::vector<uint8_t> EncodeStreamHeader(const StreamLayout& layout) {
  assert(ValidateLayout(layout).ok());
  std::vector<uint8_t> out(16 + 16 * layout.regions.size());
  PutU32(out.data(), layout.page_size);
  PutU32(out.data() + 4, static_cast<uint32_t>(layout.regions.size()));
  PutU32(out.data() + 8, static_cast<uint32_t>(layout.devices.size()));
  PutU32(out.data() + 12, 0);
  uint8_t* p = out.data() + 16;
  for (const StreamRegion& r : layout.regions) {
    PutU64(p, r.gpa);
    PutU64(p + 8, r.size_bytes);
    p += 16;
  }
  for (const DeviceInfo& d : layout.devices) {
    uint8_t fixed[12];
    PutU32(fixed, d.id);
    PutU32(fixed + 4, d.flags);
    PutU16(fixed + 8, static_cast<uint16_t>(d.name.size()));
    PutU16(fixed + 10, 0);
    out.insert(out.end(), fixed, fixed + 12);
    out.insert(out.end(), d.name.begin(), d.name.end());
  }
  return out;
}

Result<StreamLayout> ParseStreamHeader(std::span<const uint8_t> payload) {
  if (payload.size() < 16) return WrongSize("stream-header", payload.size(), 16);
  StreamLayout layout;
  layout.page_size = GetU32(payload.data());
  const uint32_t regions = GetU32(payload.data() + 4);
  const uint32_t devices = GetU32(payload.data() + 8);
  if (GetU32(payload.data() + 12) != 0) {
    return CorruptError("stream-header reserved field not zero");
  }
  if (regions > kMaxRegions || devices > kMaxDevices) {
    return CorruptError("stream-header lists " + std::to_string(regions) +
                        " regions and " + std::to_string(devices) +
                        " devices (caps " + std::to_string(kMaxRegions) +
                        " and " + std::to_string(kMaxDevices) + ")");
  }
  size_t pos = 16;
  if (payload.size() < pos + 16ull * regions) {
    return CorruptError("stream-header truncated in the region list");
  }
  layout.regions.reserve(regions);
  for (uint32_t i = 0; i < regions; ++i, pos += 16) {
    layout.regions.push_back(
        {GetU64(payload.data() + pos), GetU64(payload.data() + pos + 8)});
  }
  layout.devices.reserve(devices);
  for (uint32_t i = 0; i < devices; ++i) {
    if (payload.size() < pos + 12) {
      return CorruptError("stream-header truncated in device " +
                          std::to_string(i));
    }
    DeviceInfo d;
    d.id = GetU32(payload.data() + pos);
    d.flags = GetU32(payload.data() + pos + 4);
    const uint16_t name_bytes = GetU16(payload.data() + pos + 8);
    if (GetU16(payload.data() + pos + 10) != 0) {
      return CorruptError("stream-header device " + std::to_string(i) +
                          " reserved field not zero");
    }
    pos += 12;
    if (name_bytes > kMaxDeviceNameBytes || payload.size() < pos + name_bytes) {
      return CorruptError("stream-header device " + std::to_string(i) +
                          " name overruns the record");
    }
    d.name.assign(reinterpret_cast<const char*>(payload.data() + pos),
                  name_bytes);
    pos += name_bytes;
    layout.devices.push_back(std::move(d));
  }
  if (pos != payload.size()) {
    return CorruptError("stream-header has " + Bytes(payload.size() - pos) +
                        " of trailing garbage");
  }
  Status s = ValidateLayout(layout);
  if (!s.ok()) return CorruptError("stream-header: " + s.message());
  return layout;
}

// ---- RAM --------------------------------------------------------------
// u32 region, u32 page_count, u64 first_page, u32 data_pages, u32 reserved,
// zero map (ceil(page_count / 8) bytes), body.

Status EncodeRamPayload(const CodecOptions& options, uint32_t region,
                        uint64_t first_page, uint32_t page_count,
                        uint32_t page_size, const uint8_t* pages,
                        EncodedPayload& out) {
  assert(page_count > 0 && page_count <= kMaxPagesPerRamRecord);
  const size_t map_bytes = (page_count + 7) / 8;
  out.head.assign(kRamFixedBytes + map_bytes, 0);
  uint8_t* map = out.head.data() + kRamFixedBytes;
  uint32_t data_pages = 0;
  for (uint32_t i = 0; i < page_count; ++i) {
    if (IsZeroPage(pages + size_t{i} * page_size, page_size)) {
      map[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
    } else {
      ++data_pages;
    }
  }
  if (size_t{data_pages} * page_size > kMaxChunkBytes) {
    return InvalidArgumentError(
        "RAM record of " + std::to_string(data_pages) + " data pages exceeds " +
        Bytes(kMaxChunkBytes));
  }
  PutU32(out.head.data(), region);
  PutU32(out.head.data() + 4, page_count);
  PutU64(out.head.data() + 8, first_page);
  PutU32(out.head.data() + 16, data_pages);
  PutU32(out.head.data() + 20, 0);
  out.uncompressed_bytes = size_t{data_pages} * page_size;
  std::span<const uint8_t> data;
  if (data_pages == page_count) {  // no holes: compress straight from memory
    data = {pages, size_t{page_count} * page_size};
  } else {
    out.gathered.resize(out.uncompressed_bytes);
    uint8_t* dst = out.gathered.data();
    for (uint32_t i = 0; i < page_count; ++i) {
      if (ZeroMapTest({map, map_bytes}, i)) continue;
      std::memcpy(dst, pages + size_t{i} * page_size, page_size);
      dst += page_size;
    }
    data = out.gathered;
  }
  CONVERGE_ASSIGN_OR_RETURN(out.encoding,
                            EncodeChunk(options, data, out.compressed));
  if (out.encoding != Codec::kNone) {
    out.body = out.compressed;
    out.payload_xxh3 = PayloadXxh3(std::array<std::span<const uint8_t>, 2>{
        out.head, out.body});
    return OkStatus();
  }
  // Sent raw. Guest memory may change under us (the vCPUs still run): the
  // record's checksum and the bytes on the wire must come from one copy, so
  // a body that would point into live memory is copied first. (A page
  // written meanwhile is dirty again and resent; only a torn record would
  // fail verification.)
  if (data.data() == pages) {
    out.gathered.assign(data.begin(), data.end());
    data = out.gathered;
  }
  out.body = data;
  out.payload_xxh3 = PayloadXxh3(
      std::array<std::span<const uint8_t>, 2>{out.head, out.body});
  return OkStatus();
}

Result<RamRecord> ParseRamPayload(std::span<const uint8_t> payload,
                                  uint32_t page_size) {
  if (payload.size() < kRamFixedBytes) {
    return CorruptError("ram payload of " + Bytes(payload.size()) +
                        " is shorter than its fixed part");
  }
  RamRecord r;
  r.region = GetU32(payload.data());
  r.page_count = GetU32(payload.data() + 4);
  r.first_page = GetU64(payload.data() + 8);
  r.data_pages = GetU32(payload.data() + 16);
  if (GetU32(payload.data() + 20) != 0) {
    return CorruptError("ram reserved field not zero");
  }
  if (r.page_count == 0 || r.page_count > kMaxPagesPerRamRecord) {
    return CorruptError("ram page count " + std::to_string(r.page_count) +
                        " outside [1, " + std::to_string(kMaxPagesPerRamRecord) +
                        "]");
  }
  const size_t map_bytes = (r.page_count + 7) / 8;
  if (payload.size() < kRamFixedBytes + map_bytes) {
    return CorruptError("ram payload truncated in the zero map");
  }
  r.zero_map = payload.subspan(kRamFixedBytes, map_bytes);
  uint32_t zeros = 0;
  for (uint32_t i = 0; i < r.page_count; ++i) zeros += ZeroMapTest(r.zero_map, i);
  if (r.page_count % 8 != 0 &&
      (r.zero_map[map_bytes - 1] >> (r.page_count % 8)) != 0) {
    return CorruptError("ram zero map has bits past the page count");
  }
  if (zeros + r.data_pages != r.page_count) {
    return CorruptError("ram data page count " + std::to_string(r.data_pages) +
                        " disagrees with the zero map");
  }
  if (uint64_t{r.data_pages} * page_size > kMaxChunkBytes) {
    return CorruptError("ram record decompresses to more than " +
                        Bytes(kMaxChunkBytes));
  }
  r.body = payload.subspan(kRamFixedBytes + map_bytes);
  return r;
}

// ---- Device data: u32 device_id, u32 uncompressed_bytes, u64 sequence, body.

Status EncodeDevicePayload(const CodecOptions& options, uint32_t device_id,
                           uint64_t sequence, std::span<const uint8_t> data,
                           EncodedPayload& out) {
  assert(!data.empty() && data.size() <= kMaxChunkBytes);
  out.head.resize(kDeviceDataFixedBytes);
  PutU32(out.head.data(), device_id);
  PutU32(out.head.data() + 4, static_cast<uint32_t>(data.size()));
  PutU64(out.head.data() + 8, sequence);
  out.uncompressed_bytes = data.size();
  CONVERGE_ASSIGN_OR_RETURN(out.encoding,
                            EncodeChunk(options, data, out.compressed));
  out.body = out.encoding == Codec::kNone
                 ? data
                 : std::span<const uint8_t>(out.compressed);
  out.payload_xxh3 = PayloadXxh3(
      std::array<std::span<const uint8_t>, 2>{out.head, out.body});
  out.data_xxh3 = XXH3_64bits(data.data(), data.size());
  return OkStatus();
}

Result<DeviceDataRecord> ParseDevicePayload(std::span<const uint8_t> payload) {
  if (payload.size() < kDeviceDataFixedBytes) {
    return CorruptError("device-data payload of " + Bytes(payload.size()) +
                        " is shorter than its fixed part");
  }
  DeviceDataRecord r;
  r.device_id = GetU32(payload.data());
  r.uncompressed_bytes = GetU32(payload.data() + 4);
  r.sequence = GetU64(payload.data() + 8);
  if (r.uncompressed_bytes == 0 || r.uncompressed_bytes > kMaxChunkBytes) {
    return CorruptError("device-data uncompressed length " +
                        std::to_string(r.uncompressed_bytes) + " outside [1, " +
                        std::to_string(kMaxChunkBytes) + "]");
  }
  r.body = payload.subspan(kDeviceDataFixedBytes);
  return r;
}

// ---- Iteration mark: u64 iteration, u64 timestamp_ns.

std::vector<uint8_t> EncodeIterationMark(const IterationMark& mark) {
  std::vector<uint8_t> out(kIterationMarkBytes);
  PutU64(out.data(), mark.iteration);
  PutU64(out.data() + 8, mark.timestamp_ns);
  return out;
}

Result<IterationMark> ParseIterationMark(std::span<const uint8_t> payload) {
  if (payload.size() != kIterationMarkBytes) {
    return WrongSize("iteration-mark", payload.size(), kIterationMarkBytes);
  }
  return IterationMark{GetU64(payload.data()), GetU64(payload.data() + 8)};
}

// ---- End of device: u32 device_id, u32 reserved, u64 total_bytes,
// u64 chunk_count, u64 digest.

std::vector<uint8_t> EncodeEndOfDevice(const EndOfDevice& end) {
  std::vector<uint8_t> out(kEndOfDeviceBytes);
  PutU32(out.data(), end.device_id);
  PutU32(out.data() + 4, 0);
  PutU64(out.data() + 8, end.total_bytes);
  PutU64(out.data() + 16, end.chunk_count);
  PutU64(out.data() + 24, end.digest);
  return out;
}

Result<EndOfDevice> ParseEndOfDevice(std::span<const uint8_t> payload) {
  if (payload.size() != kEndOfDeviceBytes) {
    return WrongSize("end-of-device", payload.size(), kEndOfDeviceBytes);
  }
  if (GetU32(payload.data() + 4) != 0) {
    return CorruptError("end-of-device reserved field not zero");
  }
  return EndOfDevice{GetU32(payload.data()), GetU64(payload.data() + 8),
                     GetU64(payload.data() + 16), GetU64(payload.data() + 24)};
}

// ---- End of stream: u64 record_count, u64 ram_pages, u64 digest,
// u32 device_count, u32 reserved; per device u32 id, u32 reserved, u64 bytes.

std::vector<uint8_t> EncodeEndOfStream(const EndOfStream& end) {
  std::vector<uint8_t> out(kEndOfStreamFixedBytes + 16 * end.devices.size());
  PutU64(out.data(), end.record_count);
  PutU64(out.data() + 8, end.ram_pages);
  PutU64(out.data() + 16, end.digest);
  PutU32(out.data() + 24, static_cast<uint32_t>(end.devices.size()));
  PutU32(out.data() + 28, 0);
  uint8_t* p = out.data() + kEndOfStreamFixedBytes;
  for (const DeviceTotal& d : end.devices) {
    PutU32(p, d.device_id);
    PutU32(p + 4, 0);
    PutU64(p + 8, d.bytes);
    p += 16;
  }
  return out;
}

Result<EndOfStream> ParseEndOfStream(std::span<const uint8_t> payload) {
  if (payload.size() < kEndOfStreamFixedBytes) {
    return WrongSize("end-of-stream", payload.size(), kEndOfStreamFixedBytes);
  }
  EndOfStream end;
  end.record_count = GetU64(payload.data());
  end.ram_pages = GetU64(payload.data() + 8);
  end.digest = GetU64(payload.data() + 16);
  const uint32_t n = GetU32(payload.data() + 24);
  if (GetU32(payload.data() + 28) != 0) {
    return CorruptError("end-of-stream reserved field not zero");
  }
  if (n > kMaxDevices) {
    return CorruptError("end-of-stream lists " + std::to_string(n) +
                        " devices (cap " + std::to_string(kMaxDevices) + ")");
  }
  const size_t want = kEndOfStreamFixedBytes + 16ull * n;
  if (payload.size() != want) {
    return WrongSize("end-of-stream", payload.size(), want);
  }
  const uint8_t* p = payload.data() + kEndOfStreamFixedBytes;
  for (uint32_t i = 0; i < n; ++i, p += 16) {
    if (GetU32(p + 4) != 0) {
      return CorruptError("end-of-stream device reserved field not zero");
    }
    end.devices.push_back({GetU32(p), GetU64(p + 8)});
  }
  return end;
}

}  // namespace converge
