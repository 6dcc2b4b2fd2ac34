#include "bitmap/rescale.h"

#include <algorithm>
#include <bit>
#include <string>

#include "bitmap/word_ops.h"

namespace converge {
namespace {

// Positions are kept in units of the smaller page size, in 128 bits so no
// product of a bit index and a page ratio can overflow.
using Wide = unsigned __int128;

Status CheckPageBytes(const char* what, uint64_t page_bytes) {
  if (!std::has_single_bit(page_bytes)) {
    return InvalidArgumentError(std::string("Rescale: ") + what + " " +
                                std::to_string(page_bytes) +
                                " is not a power of two");
  }
  return OkStatus();
}

// The index of the highest set bit of words; REQUIRES: some bit is set.
uint64_t LastSetBit(std::span<const uint64_t> words) {
  uint64_t i = words.size();
  while (words[i - 1] == 0) --i;
  return 64 * (i - 1) + 63 - static_cast<uint64_t>(std::countl_zero(words[i - 1]));
}

}  // namespace

Status RescaleWordsInto(std::span<const uint64_t> src_words,
                        uint64_t src_page_bytes, uint64_t offset_bytes,
                        DirtyBitmap& dst, uint64_t dst_page_bytes) {
  assert(src_words.data() != dst.words().data() || src_words.empty());
  CONVERGE_RETURN_IF_ERROR(CheckPageBytes("src_page_bytes", src_page_bytes));
  CONVERGE_RETURN_IF_ERROR(CheckPageBytes("dst_page_bytes", dst_page_bytes));
  const uint64_t unit_bytes = std::min(src_page_bytes, dst_page_bytes);
  if (offset_bytes % unit_bytes != 0) {
    return InvalidArgumentError(
        "Rescale: offset_bytes " + std::to_string(offset_bytes) +
        " is not a multiple of the smaller page size " +
        std::to_string(unit_bytes));
  }
  const uint64_t src_units = src_page_bytes / unit_bytes;  // per src page
  const uint64_t dst_units = dst_page_bytes / unit_bytes;  // per dst page
  const Wide offset_units = offset_bytes / unit_bytes;
  const Wide dst_end_units = Wide{dst.num_pages()} * dst_units;

  if (word_ops::Active().find_word_not(src_words.data(), 0, src_words.size(),
                                       0) == src_words.size()) {
    return OkStatus();  // nothing dirty
  }
  // Bits are ascending in address, so only the last set bit can be past
  // the end.
  const uint64_t last_bit = LastSetBit(src_words);
  if (offset_units + Wide{last_bit} * src_units >= dst_end_units) {
    return OutOfRangeError(
        "Rescale: dirty bit " + std::to_string(last_bit) + " (" +
        std::to_string(src_page_bytes) + "-byte pages at offset " +
        std::to_string(offset_bytes) + ") starts past the end of a bitmap of " +
        std::to_string(dst.num_pages()) + " pages of " +
        std::to_string(dst_page_bytes) + " bytes");
  }

  if (src_units == dst_units) {
    return dst.MergeWords(src_words,
                          static_cast<uint64_t>(offset_units / dst_units));
  }
  const uint64_t dst_pages = dst.num_pages();
  uint64_t set_end = 0;  // dst pages below this are already set by this call
  word_ops::ForEachRunInWords(src_words, 0, [&](PageRun run) {
    const Wide lo_units = offset_units + Wide{run.first} * src_units;
    const Wide hi_units = lo_units + Wide{run.count} * src_units;
    // Every dst page overlapping [lo_units, hi_units), clipped to dst.
    uint64_t lo = static_cast<uint64_t>(lo_units / dst_units);
    const Wide hi_wide = (hi_units + dst_units - 1) / dst_units;
    const uint64_t hi =
        hi_wide > dst_pages ? dst_pages : static_cast<uint64_t>(hi_wide);
    lo = std::max(lo, set_end);  // fine runs sharing a coarse page
    if (lo < hi) {
      dst.SetRange(lo, hi - lo);
      set_end = hi;
    }
  });
  return OkStatus();
}

Status RescaleInto(const DirtyBitmap& src, uint64_t src_page_bytes,
                   DirtyBitmap& dst, uint64_t dst_page_bytes) {
  assert(&src != &dst);
  return RescaleWordsInto(src.words(), src_page_bytes, 0, dst,
                          dst_page_bytes);
}

}  // namespace converge
