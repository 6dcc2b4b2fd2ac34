#include "io/stream_reader.h"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

#include "io/stream_writer.h"
#include "io_test_util.h"

namespace converge {
namespace {

using testing::Content;
using testing::FrameRecord;
using testing::MakeContent;

StreamLayout Layout() {
  StreamLayout l;
  l.page_size = 4096;
  l.regions = {{0x100000, 16 * 4096}};
  l.devices = {{1, 0, "dev1"}, {2, 0, "dev2"}};
  return l;
}

// A small stream with every record type.
std::vector<uint8_t> SmallStream(Codec codec = Codec::kLz4) {
  MemoryTransport t;
  auto w = StreamWriter::Create(t, Layout(), {codec, 1}).value();
  alignas(64) static uint8_t pages[4 * 4096];
  testing::FillContent(Content::kMixed, 1, {pages, sizeof(pages)});
  std::memset(pages + 4096, 0, 4096);
  EXPECT_TRUE(w->WriteIterationMark(1, 1000).ok());
  EXPECT_TRUE(w->WriteRamPages(0, 3, 4, pages).ok());
  EXPECT_TRUE(w->WriteDeviceChunk(1, MakeContent(Content::kText, 2, 300)).ok());
  EXPECT_TRUE(w->WriteDeviceChunk(2, MakeContent(Content::kRandom, 3, 200)).ok());
  EXPECT_TRUE(w->WriteDeviceChunk(1, MakeContent(Content::kText, 4, 100)).ok());
  EXPECT_TRUE(w->EndDevice(1).ok());
  EXPECT_TRUE(w->EndDevice(2).ok());
  EXPECT_TRUE(w->Finish().ok());
  return t.data();
}

// Reads a whole stream; returns the first error (OK at end-of-stream).
Status ReadAll(std::span<const uint8_t> bytes, size_t* records = nullptr) {
  MemoryTransport t(bytes);
  CONVERGE_ASSIGN_OR_RETURN(auto reader, StreamReader::Open(t));
  size_t n = 1;
  while (!reader->finished()) {
    CONVERGE_ASSIGN_OR_RETURN(const StreamRecord* r, reader->Next());
    (void)r;
    ++n;
  }
  if (records != nullptr) *records = n;
  return OkStatus();
}

TEST(StreamReaderTest, ReadsEveryRecordType) {
  const std::vector<uint8_t> bytes = SmallStream();
  MemoryTransport t(bytes);
  auto reader = StreamReader::Open(t);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->layout(), Layout());
  std::vector<RecordType> types;
  std::vector<uint8_t> dev1;
  while (!(*reader)->finished()) {
    Result<const StreamRecord*> r = (*reader)->Next();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    types.push_back((*r)->type);
    if ((*r)->type == RecordType::kDeviceData && (*r)->device.device_id == 1) {
      dev1.insert(dev1.end(), (*r)->data.begin(), (*r)->data.end());
    }
    if ((*r)->type == RecordType::kRam) {
      EXPECT_EQ((*r)->ram.first_page, 3u);
      EXPECT_EQ((*r)->ram.data_pages, 3u);
      EXPECT_EQ((*r)->data.size(), 3u * 4096);
    }
  }
  const std::vector<RecordType> want = {
      RecordType::kIterationMark, RecordType::kRam,
      RecordType::kDeviceData,    RecordType::kDeviceData,
      RecordType::kDeviceData,    RecordType::kEndOfDevice,
      RecordType::kEndOfDevice,   RecordType::kEndOfStream};
  EXPECT_EQ(types, want);
  std::vector<uint8_t> expect = MakeContent(Content::kText, 2, 300);
  std::vector<uint8_t> more = MakeContent(Content::kText, 4, 100);
  expect.insert(expect.end(), more.begin(), more.end());
  EXPECT_EQ(dev1, expect);
  EXPECT_EQ((*reader)->device_bytes(1), 400u);
  EXPECT_EQ((*reader)->bytes_read(), bytes.size());
}

// The digests are what docs/wire-format.md defines, computed here from the
// bytes: end-of-stream chains the preamble and every earlier record header,
// end-of-device chains the XXH3-64 of each decoded chunk.
TEST(StreamReaderTest, DigestsFollowTheirDefinition) {
  const std::vector<uint8_t> bytes = SmallStream();
  HashChain headers;
  headers.Add(std::span<const uint8_t>(bytes).first(kPreambleBytes));
  size_t at = kPreambleBytes;
  uint64_t end_digest = 0;
  while (at < bytes.size()) {
    RecordHeader h = DecodeRecordHeader(bytes.data() + at);
    const uint8_t* payload = bytes.data() + at + kRecordHeaderBytes;
    if (h.type == RecordType::kEndOfStream) {
      end_digest = ParseEndOfStream({payload, h.payload_bytes})->digest;
      EXPECT_EQ(at + kRecordHeaderBytes + h.payload_bytes, bytes.size());
      break;
    }
    headers.Add(std::span<const uint8_t>(bytes).subspan(at, kRecordHeaderBytes));
    at += kRecordHeaderBytes + h.payload_bytes;
  }
  EXPECT_EQ(end_digest, headers.Digest());

  MemoryTransport t(bytes);
  auto reader = StreamReader::Open(t).value();
  HashChain dev1;
  uint64_t dev1_digest = 0;
  while (!reader->finished()) {
    Result<const StreamRecord*> rec = reader->Next();
    ASSERT_TRUE(rec.ok()) << rec.status().ToString();
    if ((*rec)->type == RecordType::kDeviceData &&
        (*rec)->device.device_id == 1) {
      dev1.Add(XXH3_64bits((*rec)->data.data(), (*rec)->data.size()));
    }
    if ((*rec)->type == RecordType::kEndOfDevice &&
        (*rec)->end_of_device.device_id == 1) {
      dev1_digest = (*rec)->end_of_device.digest;
    }
  }
  EXPECT_EQ(dev1_digest, dev1.Digest());
}

TEST(StreamReaderTest, EveryTruncationIsRejected) {
  const std::vector<uint8_t> bytes = SmallStream();
  for (size_t n = 0; n < bytes.size(); ++n) {
    Status s = ReadAll({bytes.data(), n});
    ASSERT_FALSE(s.ok()) << "truncated to " << n;
    EXPECT_EQ(s.code(), StatusCode::kCorrupt);
    EXPECT_NE(s.message().find("truncated"), std::string::npos)
        << n << ": " << s.ToString();
  }
}

TEST(StreamReaderTest, EveryByteFlipIsRejected) {
  for (Codec codec : {Codec::kNone, Codec::kLz4, Codec::kZstd}) {
    const std::vector<uint8_t> bytes = SmallStream(codec);
    for (size_t i = 0; i < bytes.size(); ++i) {
      std::vector<uint8_t> bad = bytes;
      bad[i] ^= 0x20;
      Status s = ReadAll(bad);
      ASSERT_FALSE(s.ok()) << CodecName(codec) << " flip at " << i;
      EXPECT_EQ(s.code(), StatusCode::kCorrupt);
    }
  }
}

TEST(StreamReaderTest, ErrorsNameRecordAndOffset) {
  std::vector<uint8_t> bytes = SmallStream();
  // Corrupt the payload of record 1 (the iteration mark right after the
  // header record): the error names it and its offset.
  const size_t header_record = kRecordHeaderBytes + GetU32(bytes.data() + 16 + 4);
  const size_t offset = kPreambleBytes + header_record;
  bytes[offset + kRecordHeaderBytes + 3] ^= 1;
  Status s = ReadAll(bytes);
  EXPECT_EQ(s.message(), "record 1 (iteration-mark) at byte offset " +
                             std::to_string(offset) + ": checksum mismatch");
}

// Builds a stream by hand, record by record.
struct Builder {
  std::vector<uint8_t> bytes;
  uint64_t index = 0;
  Builder() {
    bytes.resize(kPreambleBytes);
    EncodePreamble(bytes.data());
    Add(RecordType::kStreamHeader, EncodeStreamHeader(Layout()));
  }
  void Add(RecordType type, std::span<const uint8_t> payload,
           Codec enc = Codec::kNone) {
    std::vector<uint8_t> r = FrameRecord(type, enc, index++, payload);
    bytes.insert(bytes.end(), r.begin(), r.end());
  }
  void Device(uint32_t id, uint64_t seq, size_t n) {
    EncodedPayload p;
    std::vector<uint8_t> data(n, 0x5A);
    EXPECT_TRUE(EncodeDevicePayload({Codec::kNone, 1}, id, seq, data, p).ok());
    std::vector<uint8_t> payload = p.head;
    payload.insert(payload.end(), p.body.begin(), p.body.end());
    Add(RecordType::kDeviceData, payload);
  }
};

Status FirstError(const Builder& b) { return ReadAll(b.bytes); }

TEST(StreamReaderTest, MalformedStreamsTable) {
  struct Case {
    const char* what;
    void (*build)(Builder&);
    const char* error;
  };
  const Case cases[] = {
      {"unknown device", [](Builder& b) { b.Device(5, 0, 10); },
       "unknown device id 5"},
      {"sequence gap", [](Builder& b) {
         b.Device(1, 0, 10);
         b.Device(1, 2, 10);
       }, "sequence gap on device 1: got 2, expected 1"},
      {"unknown type", [](Builder& b) {
         b.Add(static_cast<RecordType>(9), std::vector<uint8_t>(4));
       }, "unknown record type"},
      {"second header", [](Builder& b) {
         b.Add(RecordType::kStreamHeader, EncodeStreamHeader(Layout()));
       }, "second stream header"},
      {"pages out of range", [](Builder& b) {
         alignas(64) static uint8_t page[4096] = {1};
         EncodedPayload p;
         EXPECT_TRUE(
             EncodeRamPayload({Codec::kNone, 1}, 0, 16, 1, 4096, page, p).ok());
         std::vector<uint8_t> payload = p.head;
         payload.insert(payload.end(), p.body.begin(), p.body.end());
         b.Add(RecordType::kRam, payload);
       }, "out of range"},
      {"unknown region", [](Builder& b) {
         alignas(64) static uint8_t page[4096] = {1};
         EncodedPayload p;
         EXPECT_TRUE(
             EncodeRamPayload({Codec::kNone, 1}, 3, 0, 1, 4096, page, p).ok());
         std::vector<uint8_t> payload = p.head;
         payload.insert(payload.end(), p.body.begin(), p.body.end());
         b.Add(RecordType::kRam, payload);
       }, "region 3 not in the stream header"},
      {"decompressed size mismatch", [](Builder& b) {
         EncodedPayload p;
         std::vector<uint8_t> data(5000, 'a');
         EXPECT_TRUE(EncodeDevicePayload({Codec::kLz4, 1}, 1, 0, data, p).ok());
         std::vector<uint8_t> payload = p.head;
         PutU32(payload.data() + 4, 4000);
         payload.insert(payload.end(), p.body.begin(), p.body.end());
         b.Add(RecordType::kDeviceData, payload, Codec::kLz4);
       }, "lz4 chunk"},
      {"compressed end record", [](Builder& b) {
         b.Add(RecordType::kIterationMark, EncodeIterationMark({1, 2}),
               Codec::kLz4);
       }, "unknown encoding 1"},
      {"empty device chunk", [](Builder& b) {
         std::vector<uint8_t> payload(kDeviceDataFixedBytes, 0);
         PutU32(payload.data(), 1);
         b.Add(RecordType::kDeviceData, payload);
       }, "outside [1"},
      {"end-of-device total", [](Builder& b) {
         b.Device(1, 0, 10);
         b.Add(RecordType::kEndOfDevice, EncodeEndOfDevice({1, 11, 1, 0}));
       }, "sent 10 bytes in 1 chunks"},
      {"end-of-device hash", [](Builder& b) {
         b.Device(1, 0, 10);
         b.Add(RecordType::kEndOfDevice, EncodeEndOfDevice({1, 10, 1, 0}));
       }, "device 1 digest mismatch"},
      {"data after end", [](Builder& b) {
         b.Add(RecordType::kEndOfDevice,
               EncodeEndOfDevice({2, 0, 0, HashChain().Digest()}));
         b.Device(2, 0, 10);
       }, "after its end-of-device"},
      {"end of stream without end of device", [](Builder& b) {
         b.Add(RecordType::kEndOfStream, EncodeEndOfStream({1, 0, 0, {}}));
       }, "stream digest mismatch"},
      {"no end of stream", [](Builder&) {}, "truncated"},
  };
  for (const Case& c : cases) {
    Builder b;
    c.build(b);
    Status s = FirstError(b);
    ASSERT_FALSE(s.ok()) << c.what;
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << c.what;
    EXPECT_NE(s.message().find(c.error), std::string::npos)
        << c.what << ": " << s.ToString();
  }
}

TEST(StreamReaderTest, OversizedLengthRejectedBeforeAllocation) {
  Builder b;
  RecordHeader h;
  h.type = RecordType::kDeviceData;
  h.payload_bytes = 0xFFFFFFF0u;
  h.index = 1;
  uint8_t header[kRecordHeaderBytes];
  EncodeRecordHeader(h, header);
  b.bytes.insert(b.bytes.end(), header, header + kRecordHeaderBytes);
  Status s = FirstError(b);
  EXPECT_NE(s.message().find("over the limit"), std::string::npos)
      << s.ToString();
  EXPECT_NE(s.message().find("record 1 (device-data)"), std::string::npos);
}

TEST(StreamReaderTest, ReorderedRecordsRejected) {
  Builder b;
  b.Device(1, 0, 10);
  b.Device(1, 1, 10);
  // Swap the two device records (each 24 + 16 + 10 bytes).
  const size_t rec = kRecordHeaderBytes + kDeviceDataFixedBytes + 10;
  std::vector<uint8_t> bytes = b.bytes;
  const size_t first = bytes.size() - 2 * rec;
  std::vector<uint8_t> a(bytes.begin() + first, bytes.begin() + first + rec);
  std::copy(bytes.begin() + first + rec, bytes.end(), bytes.begin() + first);
  std::copy(a.begin(), a.end(), bytes.begin() + first + rec);
  Status s = ReadAll(bytes);
  EXPECT_NE(s.message().find("out of order"), std::string::npos) << s.ToString();
}

TEST(StreamReaderTest, EmptyAndForeignInput) {
  EXPECT_NE(ReadAll({}).message().find("truncated"), std::string::npos);
  const std::string text = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
  Status s = ReadAll({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  EXPECT_NE(s.message().find("bad magic"), std::string::npos);
}

TEST(StreamReaderTest, NextAfterFailureFails) {
  std::vector<uint8_t> bytes = SmallStream();
  bytes[bytes.size() - 1] ^= 1;
  MemoryTransport t(bytes);
  auto reader = StreamReader::Open(t).value();
  Status s;
  while (s.ok()) s = reader->Next().status();
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(reader->Next().status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace converge
