#include "iommu/bit_range.h"

#include <algorithm>
#include <bit>

#include "bitmap/word_ops.h"

namespace converge {
namespace {

// The num_bits (1..64) bits of src starting at bit `bit`, in the low bits.
inline uint64_t LoadBits(const uint64_t* src, uint64_t bit, uint64_t num_bits) {
  const uint64_t w = bit / 64, s = bit % 64;
  uint64_t v = src[w] >> s;
  if (s != 0 && s + num_bits > 64) v |= src[w + 1] << (64 - s);
  return num_bits == 64 ? v : v & ((uint64_t{1} << num_bits) - 1);
}

}  // namespace

uint64_t OrBitRange(const uint64_t* src, uint64_t src_bit, uint64_t* dst,
                    uint64_t dst_bit, uint64_t num_bits) {
  uint64_t copied = 0;
  if (src_bit % 64 == 0 && dst_bit % 64 == 0) {
    const uint64_t* s = src + src_bit / 64;
    uint64_t* d = dst + dst_bit / 64;
    const uint64_t full = num_bits / 64;
    // Clean stretches are skipped by the vector scan, runs of set words
    // are copied directly.
    const word_ops::Kernels& k = word_ops::Active();
    for (uint64_t i = k.find_word_not(s, 0, full, 0); i < full;
         i = k.find_word_not(s, i, full, 0)) {
      do {
        d[i] |= s[i];
        copied += static_cast<uint64_t>(std::popcount(s[i]));
        ++i;
      } while (i < full && s[i] != 0);
    }
    const uint64_t tail = num_bits % 64;
    if (tail != 0) {
      const uint64_t v = s[full] & ((uint64_t{1} << tail) - 1);
      d[full] |= v;
      copied += static_cast<uint64_t>(std::popcount(v));
    }
    return copied;
  }
  uint64_t done = 0;
  while (done < num_bits) {
    const uint64_t at = dst_bit + done;
    const uint64_t n = std::min<uint64_t>(64 - at % 64, num_bits - done);
    const uint64_t v = LoadBits(src, src_bit + done, n);
    if (v != 0) {
      dst[at / 64] |= v << (at % 64);
      copied += static_cast<uint64_t>(std::popcount(v));
    }
    done += n;
  }
  return copied;
}

uint64_t MoveSetWords(uint64_t* src, uint64_t* dst, uint64_t n) {
  const word_ops::Kernels& k = word_ops::Active();
  uint64_t moved = 0;
  for (uint64_t i = k.find_word_not(src, 0, n, 0); i < n;
       i = k.find_word_not(src, i, n, 0)) {
    do {
      dst[i] |= src[i];
      moved += static_cast<uint64_t>(std::popcount(src[i]));
      src[i] = 0;
      ++i;
    } while (i < n && src[i] != 0);
  }
  return moved;
}

uint64_t ListSetWords(const uint64_t* words, uint64_t n,
                      std::vector<uint64_t>& set_words) {
  const word_ops::Kernels& k = word_ops::Active();
  uint64_t set = 0;
  for (uint64_t i = k.find_word_not(words, 0, n, 0); i < n;
       i = k.find_word_not(words, i, n, 0)) {
    do {
      set_words.push_back(i);
      set += static_cast<uint64_t>(std::popcount(words[i]));
      ++i;
    } while (i < n && words[i] != 0);
  }
  return set;
}

uint64_t CountBitRange(const uint64_t* words, uint64_t first_bit,
                       uint64_t num_bits) {
  uint64_t total = 0, done = 0;
  while (done < num_bits) {
    const uint64_t at = first_bit + done;
    if (at % 64 == 0 && num_bits - done >= 64) {
      total += static_cast<uint64_t>(std::popcount(words[at / 64]));
      done += 64;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(64 - at % 64, num_bits - done);
    total += static_cast<uint64_t>(std::popcount(LoadBits(words, at, n)));
    done += n;
  }
  return total;
}

}  // namespace converge
