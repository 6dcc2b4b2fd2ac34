#include "sim/vfio_device_stream.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace converge::sim {
namespace {

constexpr size_t kBlock = DeviceStateContent::kBlockBytes;

// The digest from its definition: XXH3-64 over the little-endian XXH3-64s of
// the 4 KiB blocks, the last possibly short.
uint64_t Reference(const std::vector<uint8_t>& bytes) {
  std::vector<uint8_t> chain;
  for (size_t at = 0; at < bytes.size(); at += kBlock) {
    uint64_t h =
        XXH3_64bits(bytes.data() + at, std::min(kBlock, bytes.size() - at));
    for (int i = 0; i < 8; ++i) chain.push_back(static_cast<uint8_t>(h >> (8 * i)));
  }
  return XXH3_64bits(chain.data(), chain.size());
}

std::vector<uint8_t> Content(uint64_t seed, uint64_t offset, size_t bytes) {
  std::vector<uint8_t> out(bytes);
  DeviceStateContent(seed, ContentMix{}).Fill(offset, out);
  return out;
}

TEST(PayloadDigestTest, MatchesItsDefinitionHoweverTheBytesArrive) {
  for (size_t size : {size_t{0}, size_t{1}, kBlock - 1, kBlock, kBlock + 1,
                      3 * kBlock + 5, 10 * kBlock}) {
    const std::vector<uint8_t> bytes = Content(3, 0, size);
    for (size_t piece : {size_t{1}, size_t{7}, kBlock, size_t{5000}, size}) {
      if (piece == 0) continue;
      PayloadDigest d;
      for (size_t at = 0; at < size; at += piece) {
        d.Update(std::span<const uint8_t>(bytes).subspan(
            at, std::min(piece, size - at)));
      }
      EXPECT_EQ(d.bytes(), size);
      EXPECT_EQ(d.Digest(), Reference(bytes))
          << size << " bytes in pieces of " << piece;
    }
  }
}

TEST(PayloadDigestTest, AddBlockEqualsHashingTheBlock) {
  const std::vector<uint8_t> bytes = Content(4, 0, 3 * kBlock + 100);
  PayloadDigest by_hash;
  for (size_t b = 0; b < 3; ++b) {
    by_hash.AddBlock(XXH3_64bits(bytes.data() + b * kBlock, kBlock));
  }
  by_hash.Update(std::span<const uint8_t>(bytes).subspan(3 * kBlock));
  EXPECT_EQ(by_hash.bytes(), bytes.size());
  EXPECT_EQ(by_hash.Digest(), Reference(bytes));
  // Digest() does not disturb what follows.
  by_hash.Update(std::span<const uint8_t>(bytes).first(kBlock - 100));
  std::vector<uint8_t> longer = bytes;
  longer.insert(longer.end(), bytes.begin(), bytes.begin() + kBlock - 100);
  EXPECT_EQ(by_hash.Digest(), Reference(longer));
}

TEST(PayloadDigestTest, EveryByteAndTheBlockOrderCount) {
  const std::vector<uint8_t> bytes = Content(5, 0, 4 * kBlock);
  const uint64_t good = Reference(bytes);
  std::vector<uint8_t> flipped = bytes;
  flipped[2 * kBlock + 17] ^= 1;
  EXPECT_NE(Reference(flipped), good);
  std::vector<uint8_t> swapped = bytes;
  std::swap_ranges(swapped.begin(), swapped.begin() + kBlock,
                   swapped.begin() + kBlock);
  ASSERT_NE(swapped, bytes);
  EXPECT_NE(Reference(swapped), good);
}

TEST(DeviceStateContentTest, BlocksCarryTheHashOfTheirBytes) {
  DeviceStateContent content(9, ContentMix{});
  for (uint64_t b = 0; b < 2000; ++b) {
    DeviceStateContent::Block block = content.BlockAt(b);
    ASSERT_EQ(block.hash, XXH3_64bits(block.data, kBlock)) << "block " << b;
  }
}

TEST(DeviceStateContentTest, FillCopiesTheBlocksAtAnyOffset) {
  DeviceStateContent content(9, ContentMix{});
  const uint64_t offset = 5 * kBlock + 123;
  std::vector<uint8_t> out(3 * kBlock);
  content.Fill(offset, out);
  for (size_t i = 0; i < out.size(); i += 511) {
    uint64_t at = offset + i;
    ASSERT_EQ(out[i], content.BlockAt(at / kBlock).data[at % kBlock]) << i;
  }
}

TEST(DeviceStateContentTest, BlockKindsFollowTheMix) {
  DeviceStateContent content(10, ContentMix{0.25, 0.35});
  const std::vector<uint8_t> zero(kBlock, 0);
  int zeros = 0, random = 0;
  std::set<const uint8_t*> random_pages;
  constexpr int kBlocks = 4096;
  for (uint64_t b = 0; b < kBlocks; ++b) {
    DeviceStateContent::Block block = content.BlockAt(b);
    if (std::memcmp(block.data, zero.data(), kBlock) == 0) {
      ++zeros;
    } else if (std::memchr(block.data, 0, kBlock) != nullptr) {
      // Text never holds a zero byte; 4 KiB of random bytes nearly always do.
      ++random;
      random_pages.insert(block.data);
    }
  }
  EXPECT_NEAR(zeros / double{kBlocks}, 0.25, 0.03);
  EXPECT_NEAR(random / double{kBlocks}, 0.40, 0.03);
  // Within 16 MiB of stream no random page repeats (so nothing compresses).
  EXPECT_EQ(random_pages.size(), static_cast<size_t>(random));
}

TEST(DeviceStateContentTest, SeedsGiveDifferentStreams) {
  EXPECT_EQ(Content(1, 0, 64 * kBlock), Content(1, 0, 64 * kBlock));
  EXPECT_NE(Content(1, 0, 64 * kBlock), Content(2, 0, 64 * kBlock));
}

}  // namespace
}  // namespace converge::sim
