#include "io/wire_format.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

#include "io_test_util.h"

namespace converge {
namespace {

StreamLayout SampleLayout() {
  StreamLayout l;
  l.page_size = 4096;
  l.regions = {{0, 1 << 20}, {1ull << 32, 2 << 20}};
  l.devices = {{1, 0, "nic0"}, {7, 3, "gpu"}, {9, 0, ""}};
  return l;
}

// The vCPUs keep writing guest memory while a record is checksummed and
// sent: a raw RAM payload must be a copy, never a view of the pages (a view
// would tear the record and fail verification at the destination).
TEST(WireFormatTest, RawRamPayloadIsACopyOfGuestMemory) {
  for (Codec codec : {Codec::kNone, Codec::kLz4}) {
    constexpr uint32_t kPages = 4;
    constexpr uint32_t kPageSize = 4096;
    std::vector<uint64_t> memory(kPages * kPageSize / 8);
    // Incompressible, no zero page: lz4 falls back to raw as well.
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint64_t& w : memory) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    const auto* pages = reinterpret_cast<const uint8_t*>(memory.data());
    EncodedPayload payload;
    ASSERT_TRUE(EncodeRamPayload(CodecOptions{codec, 1}, 0, 0, kPages,
                                 kPageSize, pages, payload)
                    .ok());
    ASSERT_EQ(payload.encoding, Codec::kNone);
    const std::vector<uint8_t> before(payload.body.begin(), payload.body.end());
    ASSERT_EQ(std::memcmp(before.data(), pages, before.size()), 0);
    for (uint64_t& w : memory) w = ~w;  // the guest rewrites every page
    EXPECT_TRUE(std::equal(before.begin(), before.end(), payload.body.begin()))
        << "codec " << static_cast<int>(codec);
  }
}

TEST(WireFormatTest, LittleEndianHelpers) {
  uint8_t b[8];
  PutU32(b, 0x04030201);
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(b[3], 4);
  EXPECT_EQ(GetU32(b), 0x04030201u);
  PutU64(b, 0x0807060504030201ull);
  EXPECT_EQ(b[7], 8);
  EXPECT_EQ(GetU64(b), 0x0807060504030201ull);
  PutU16(b, 0xBEEF);
  EXPECT_EQ(b[0], 0xEF);
  EXPECT_EQ(GetU16(b), 0xBEEF);
}

TEST(WireFormatTest, PreambleRoundTripAndErrors) {
  uint8_t p[kPreambleBytes];
  EncodePreamble(p);
  EXPECT_EQ(std::memcmp(p, "CONVERGE", 8), 0);
  EXPECT_TRUE(ParsePreamble(p).ok());
  uint8_t bad[kPreambleBytes];
  std::memcpy(bad, p, sizeof(p));
  bad[0] = 'X';
  EXPECT_NE(ParsePreamble(bad).message().find("bad magic"), std::string::npos);
  std::memcpy(bad, p, sizeof(p));
  EXPECT_EQ(GetU32(p + 8), kWireVersion);
  // Version 1 hashed every byte twice over; its streams are not readable.
  for (uint32_t version : {1u, kWireVersion + 1}) {
    PutU32(bad + 8, version);
    EXPECT_NE(ParsePreamble(bad).message().find("unknown version " +
                                                std::to_string(version)),
              std::string::npos);
  }
  std::memcpy(bad, p, sizeof(p));
  bad[12] = 1;
  EXPECT_EQ(ParsePreamble(bad).code(), StatusCode::kCorrupt);
}

TEST(WireFormatTest, RecordHeaderLayout) {
  RecordHeader h{RecordType::kDeviceData, Codec::kZstd, 0x11223344,
                 0x55667788AABBCCDDull, 0x0102030405060708ull};
  uint8_t b[kRecordHeaderBytes];
  EncodeRecordHeader(h, b);
  EXPECT_EQ(b[0], 3);
  EXPECT_EQ(b[1], 2);
  EXPECT_EQ(GetU16(b + 2), 0);
  EXPECT_EQ(GetU32(b + 4), 0x11223344u);
  EXPECT_EQ(GetU64(b + 8), 0x55667788AABBCCDDull);
  EXPECT_EQ(GetU64(b + 16), 0x0102030405060708ull);
  RecordHeader back = DecodeRecordHeader(b);
  EXPECT_EQ(back.type, h.type);
  EXPECT_EQ(back.payload_bytes, h.payload_bytes);
  EXPECT_EQ(back.checksum, h.checksum);
}

TEST(WireFormatTest, ChecksumCoversHeaderAndPayloadNotChecksumField) {
  uint8_t b[kRecordHeaderBytes] = {};
  std::vector<uint8_t> payload = {1, 2, 3};
  const std::span<const uint8_t> parts[] = {payload};
  const uint64_t c = RecordChecksum(b, parts);
  b[16] = 0xFF;  // the checksum field itself is not covered
  EXPECT_EQ(RecordChecksum(b, parts), c);
  b[4] = 1;
  EXPECT_NE(RecordChecksum(b, parts), c);
  b[4] = 0;
  payload[2] = 4;
  EXPECT_NE(RecordChecksum(b, parts), c);
  // Split payload parts hash like one.
  const std::vector<uint8_t> a = {1, 2}, z = {4};
  const std::span<const uint8_t> split[] = {a, z};
  EXPECT_EQ(RecordChecksum(b, split), RecordChecksum(b, parts));
  // The definition: XXH3-64 of header bytes [0, 16), seeded with the
  // payload's XXH3-64.
  EXPECT_EQ(RecordChecksum(b, parts),
            XXH3_64bits_withSeed(b, 16, XXH3_64bits(payload.data(), 3)));
  EXPECT_EQ(PayloadXxh3(split), XXH3_64bits(payload.data(), 3));
}

TEST(WireFormatTest, HashChainHashesTheLittleEndianSequence) {
  HashChain empty;
  EXPECT_EQ(empty.Digest(), XXH3_64bits(nullptr, 0));
  HashChain chain;
  chain.Add(uint64_t{0x0102030405060708});
  const uint8_t bytes[] = {9, 10, 11};
  chain.Add(bytes);
  const uint8_t want[] = {8, 7, 6, 5, 4, 3, 2, 1, 9, 10, 11};
  EXPECT_EQ(chain.Digest(), XXH3_64bits(want, sizeof want));
  // A copy continues on its own; the original is unchanged by it.
  HashChain copy = chain;
  copy.Add(uint64_t{0});
  EXPECT_EQ(chain.Digest(), XXH3_64bits(want, sizeof want));
  EXPECT_NE(copy.Digest(), chain.Digest());
  chain.Add(uint64_t{0});
  EXPECT_EQ(copy.Digest(), chain.Digest());
  copy = empty;
  EXPECT_EQ(copy.Digest(), XXH3_64bits(nullptr, 0));
}

TEST(WireFormatTest, StreamHeaderRoundTrip) {
  const StreamLayout l = SampleLayout();
  ASSERT_TRUE(ValidateLayout(l).ok());
  const std::vector<uint8_t> payload = EncodeStreamHeader(l);
  EXPECT_EQ(payload.size(), 16u + 32u + (12 + 4) + (12 + 3) + 12);
  Result<StreamLayout> back = ParseStreamHeader(payload);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, l);
  // Every truncation is rejected, as is trailing garbage.
  for (size_t n = 0; n < payload.size(); ++n) {
    EXPECT_FALSE(ParseStreamHeader({payload.data(), n}).ok()) << n;
  }
  std::vector<uint8_t> longer = payload;
  longer.push_back(0);
  EXPECT_NE(ParseStreamHeader(longer).status().message().find("trailing"),
            std::string::npos);
}

TEST(WireFormatTest, ValidateLayoutTable) {
  struct Case {
    const char* what;
    void (*edit)(StreamLayout&);
    const char* error;  // nullptr: valid
  };
  const Case cases[] = {
      {"ok", [](StreamLayout&) {}, nullptr},
      {"page size 3000", [](StreamLayout& l) { l.page_size = 3000; },
       "page size"},
      {"page size 256", [](StreamLayout& l) { l.page_size = 256; },
       "page size"},
      {"page size 2M", [](StreamLayout& l) { l.page_size = 2 << 20; },
       "page size"},
      {"empty region", [](StreamLayout& l) { l.regions[0].size_bytes = 0; },
       "region 0"},
      {"unaligned gpa", [](StreamLayout& l) { l.regions[1].gpa = 100; },
       "region 1"},
      {"wrapping", [](StreamLayout& l) {
         l.regions[1] = {~0ull - 4095, 8192};
       }, "region 1"},
      {"duplicate id", [](StreamLayout& l) { l.devices[1].id = 1; },
       "listed twice"},
      {"long name", [](StreamLayout& l) { l.devices[0].name.assign(256, 'x'); },
       "name"},
      {"too many devices", [](StreamLayout& l) {
         l.devices.clear();
         for (uint32_t i = 0; i <= kMaxDevices; ++i) l.devices.push_back({i, 0, ""});
       }, "devices"},
      {"too many regions", [](StreamLayout& l) {
         l.regions.assign(kMaxRegions + 1, {0, 4096});
       }, "regions"},
  };
  for (const Case& c : cases) {
    StreamLayout l = SampleLayout();
    c.edit(l);
    Status s = ValidateLayout(l);
    if (c.error == nullptr) {
      EXPECT_TRUE(s.ok()) << c.what << ": " << s.ToString();
    } else {
      EXPECT_NE(s.message().find(c.error), std::string::npos)
          << c.what << ": " << s.ToString();
    }
  }
}

TEST(WireFormatTest, RamPayloadZeroMapAndRoundTrip) {
  const uint32_t ps = 4096;
  const uint32_t pages = 11;
  alignas(64) static uint8_t mem[11 * 4096];
  testing::FillContent(testing::Content::kText, 5, {mem, sizeof(mem)});
  for (uint32_t zero : {1u, 2u, 8u, 10u}) std::memset(mem + zero * ps, 0, ps);
  for (Codec codec : {Codec::kNone, Codec::kLz4, Codec::kZstd}) {
    SCOPED_TRACE(CodecName(codec));
    EncodedPayload p;
    ASSERT_TRUE(EncodeRamPayload({codec, 1}, 1, 40, pages, ps, mem, p).ok());
    EXPECT_EQ(p.head.size(), kRamFixedBytes + 2);
    EXPECT_EQ(p.uncompressed_bytes, 7u * ps);
    std::vector<uint8_t> payload = p.head;
    payload.insert(payload.end(), p.body.begin(), p.body.end());
    EXPECT_EQ(p.payload_xxh3, XXH3_64bits(payload.data(), payload.size()));
    Result<RamRecord> r = ParseRamPayload(payload, ps);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->region, 1u);
    EXPECT_EQ(r->first_page, 40u);
    EXPECT_EQ(r->page_count, pages);
    EXPECT_EQ(r->data_pages, 7u);
    for (uint32_t i = 0; i < pages; ++i) {
      EXPECT_EQ(ZeroMapTest(r->zero_map, i),
                i == 1 || i == 2 || i == 8 || i == 10) << i;
    }
    std::vector<uint8_t> data(7 * ps);
    ASSERT_TRUE(DecodeChunk(p.encoding, r->body, data).ok());
    EXPECT_EQ(std::memcmp(data.data(), mem, ps), 0);
    EXPECT_EQ(std::memcmp(data.data() + ps, mem + 3 * ps, ps), 0);
  }
}

TEST(WireFormatTest, RamPayloadParseErrors) {
  alignas(64) static uint8_t mem[2 * 4096] = {1};
  EncodedPayload p;
  ASSERT_TRUE(EncodeRamPayload({Codec::kNone, 1}, 0, 0, 2, 4096, mem, p).ok());
  std::vector<uint8_t> good = p.head;
  good.insert(good.end(), p.body.begin(), p.body.end());
  ASSERT_TRUE(ParseRamPayload(good, 4096).ok());
  struct Case {
    const char* what;
    void (*edit)(std::vector<uint8_t>&);
  };
  const Case cases[] = {
      {"short", [](std::vector<uint8_t>& b) { b.resize(10); }},
      {"zero pages", [](std::vector<uint8_t>& b) { PutU32(b.data() + 4, 0); }},
      {"too many pages",
       [](std::vector<uint8_t>& b) { PutU32(b.data() + 4, kMaxPagesPerRamRecord + 1); }},
      {"data count", [](std::vector<uint8_t>& b) { PutU32(b.data() + 16, 2); }},
      {"reserved", [](std::vector<uint8_t>& b) { b[20] = 1; }},
      {"map bit past count", [](std::vector<uint8_t>& b) { b[24] |= 0x80; }},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> b = good;
    c.edit(b);
    EXPECT_EQ(ParseRamPayload(b, 4096).status().code(), StatusCode::kCorrupt)
        << c.what;
  }
}

TEST(WireFormatTest, DevicePayloadRoundTripAndErrors) {
  const std::vector<uint8_t> data =
      testing::MakeContent(testing::Content::kText, 9, 10000);
  EncodedPayload p;
  ASSERT_TRUE(EncodeDevicePayload({Codec::kLz4, 1}, 7, 3, data, p).ok());
  EXPECT_EQ(p.encoding, Codec::kLz4);
  std::vector<uint8_t> payload = p.head;
  payload.insert(payload.end(), p.body.begin(), p.body.end());
  // The encoder takes the hashes framing needs.
  EXPECT_EQ(p.payload_xxh3, XXH3_64bits(payload.data(), payload.size()));
  EXPECT_EQ(p.data_xxh3, XXH3_64bits(data.data(), data.size()));
  Result<DeviceDataRecord> r = ParseDevicePayload(payload);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->device_id, 7u);
  EXPECT_EQ(r->sequence, 3u);
  EXPECT_EQ(r->uncompressed_bytes, 10000u);
  PutU32(payload.data() + 4, 0);
  EXPECT_FALSE(ParseDevicePayload(payload).ok());
  PutU32(payload.data() + 4, kMaxChunkBytes + 1);
  EXPECT_NE(ParseDevicePayload(payload).status().message().find("uncompressed"),
            std::string::npos);
  EXPECT_FALSE(ParseDevicePayload({payload.data(), 15}).ok());
}

TEST(WireFormatTest, SmallRecordsRoundTrip) {
  Result<IterationMark> m = ParseIterationMark(EncodeIterationMark({5, 99}));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->iteration, 5u);
  EXPECT_EQ(m->timestamp_ns, 99u);
  EXPECT_FALSE(ParseIterationMark(std::vector<uint8_t>(15)).ok());

  Result<EndOfDevice> e = ParseEndOfDevice(EncodeEndOfDevice({3, 100, 2, 77}));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->device_id, 3u);
  EXPECT_EQ(e->total_bytes, 100u);
  EXPECT_EQ(e->chunk_count, 2u);
  EXPECT_EQ(e->digest, 77u);
  EXPECT_FALSE(ParseEndOfDevice(std::vector<uint8_t>(31)).ok());

  EndOfStream s{10, 20, 30, {{1, 5}, {2, 6}}};
  std::vector<uint8_t> enc = EncodeEndOfStream(s);
  EXPECT_EQ(enc.size(), kEndOfStreamFixedBytes + 32);
  Result<EndOfStream> back = ParseEndOfStream(enc);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->record_count, 10u);
  EXPECT_EQ(back->devices, s.devices);
  PutU32(enc.data() + 24, kMaxDevices + 1);
  EXPECT_NE(ParseEndOfStream(enc).status().message().find("cap"),
            std::string::npos);
  PutU32(enc.data() + 24, 3);  // count says 3, payload holds 2
  EXPECT_FALSE(ParseEndOfStream(enc).ok());
}

TEST(WireFormatTest, RecordTypeNames) {
  EXPECT_EQ(RecordTypeName(RecordType::kRam), "ram");
  EXPECT_EQ(RecordTypeName(RecordType::kEndOfStream), "end-of-stream");
  EXPECT_EQ(RecordTypeName(static_cast<RecordType>(0)), "unknown");
}

}  // namespace
}  // namespace converge
