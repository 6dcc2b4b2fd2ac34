#include "io/codec.h"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "io_test_util.h"

namespace converge {
namespace {

using testing::Content;
using testing::MakeContent;

struct CodecCase {
  CodecOptions options;
  Content content;
  size_t bytes;
  bool expect_shrink;
};

TEST(CodecTest, RoundTripTable) {
  const CodecOptions none{Codec::kNone, 1};
  const CodecOptions lz4{Codec::kLz4, 1};
  const CodecOptions zstd1{Codec::kZstd, 1};
  const CodecOptions zstd3{Codec::kZstd, 3};
  const CodecCase cases[] = {
      {none, Content::kText, 65536, false},
      {lz4, Content::kZero, 65536, true},
      {lz4, Content::kText, 65536, true},
      {lz4, Content::kRandom, 65536, false},
      {lz4, Content::kMixed, 1 << 20, true},
      {lz4, Content::kText, 1, false},
      {zstd1, Content::kText, 65536, true},
      {zstd1, Content::kRandom, 65536, false},
      {zstd3, Content::kMixed, 1 << 20, true},
      {zstd3, Content::kZero, 100, true},
  };
  for (const CodecCase& c : cases) {
    SCOPED_TRACE(std::string(CodecName(c.options.codec)) + " content " +
                 std::to_string(int(c.content)) + " bytes " +
                 std::to_string(c.bytes));
    const std::vector<uint8_t> input = MakeContent(c.content, 42, c.bytes);
    ByteBuffer out;
    Result<Codec> used = EncodeChunk(c.options, input, out);
    ASSERT_TRUE(used.ok()) << used.status().ToString();
    EXPECT_EQ(*used != Codec::kNone, c.expect_shrink);
    if (*used == Codec::kNone) {
      EXPECT_TRUE(out.empty());
    } else {
      EXPECT_EQ(*used, c.options.codec);
      EXPECT_LT(out.size(), input.size());
    }
    std::span<const uint8_t> wire =
        *used == Codec::kNone ? std::span<const uint8_t>(input)
                              : std::span<const uint8_t>(out);
    std::vector<uint8_t> back(input.size());
    ASSERT_TRUE(DecodeChunk(*used, wire, back).ok());
    EXPECT_EQ(back, input);
  }
}

TEST(CodecTest, ZstdLevelOutOfRangeIsNamed) {
  const std::vector<uint8_t> input = MakeContent(Content::kText, 1, 4096);
  ByteBuffer out;
  for (int level : {0, 23, -5}) {
    Result<Codec> r = EncodeChunk({Codec::kZstd, level}, input, out);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("zstd level"), std::string::npos);
  }
}

TEST(CodecTest, DecodeRejectsWrongSizeAndGarbage) {
  const std::vector<uint8_t> input = MakeContent(Content::kText, 2, 8192);
  for (Codec codec : {Codec::kLz4, Codec::kZstd}) {
    SCOPED_TRACE(CodecName(codec));
    ByteBuffer out;
    ASSERT_EQ(EncodeChunk({codec, 1}, input, out).value(), codec);
    std::vector<uint8_t> small(input.size() - 1);
    std::vector<uint8_t> large(input.size() + 1);
    EXPECT_EQ(DecodeChunk(codec, out, small).code(), StatusCode::kCorrupt);
    EXPECT_EQ(DecodeChunk(codec, out, large).code(), StatusCode::kCorrupt);
    std::vector<uint8_t> garbage = MakeContent(Content::kRandom, 3, 100);
    std::vector<uint8_t> back(input.size());
    EXPECT_EQ(DecodeChunk(codec, garbage, back).code(), StatusCode::kCorrupt);
  }
  std::vector<uint8_t> back(10);
  EXPECT_EQ(DecodeChunk(Codec::kNone, input, back).code(),
            StatusCode::kCorrupt);
  EXPECT_EQ(DecodeChunk(static_cast<Codec>(9), input, back).code(),
            StatusCode::kCorrupt);
}

TEST(CodecTest, IsZeroPageTable) {
  alignas(64) uint8_t page[4096];
  struct Case {
    int nonzero_at;  // -1: all zero
    size_t bytes;
    bool zero;
  };
  const Case cases[] = {{-1, 4096, true}, {0, 4096, false},
                        {4095, 4096, false}, {2048, 4096, false},
                        {63, 4096, false},  {-1, 8, true},
                        {7, 8, false},      {100, 104, false},
                        {-1, 0, true}};
  for (const Case& c : cases) {
    std::memset(page, 0, sizeof(page));
    if (c.nonzero_at >= 0) page[c.nonzero_at] = 0x80;
    EXPECT_EQ(IsZeroPage(page, c.bytes), c.zero)
        << "nonzero_at " << c.nonzero_at << " bytes " << c.bytes;
  }
}

TEST(CodecTest, CodecNames) {
  EXPECT_EQ(CodecName(Codec::kNone), "none");
  EXPECT_EQ(CodecName(Codec::kLz4), "lz4");
  EXPECT_EQ(CodecName(Codec::kZstd), "zstd");
  EXPECT_EQ(CodecName(static_cast<Codec>(7)), "unknown");
}

}  // namespace
}  // namespace converge
