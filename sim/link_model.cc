#include "sim/link_model.h"

#include <cassert>
#include <cmath>

namespace converge::sim {
namespace {

// SplitMix64: a fast, well-mixed hash of the page index.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t LinkModel::TransferNs(uint64_t bytes) const {
  double s = static_cast<double>(bytes) / options_.bandwidth_bps +
             options_.latency_ms * 1e-3;
  return static_cast<uint64_t>(std::llround(s * 1e9));
}

PageClass ContentModel::ClassOf(uint64_t page) const {
  double u = static_cast<double>(Mix(page ^ options_.seed) >> 11) * 0x1.0p-53;
  if (u < options_.zero_fraction) return PageClass::kZero;
  if (u < options_.zero_fraction + options_.text_fraction) {
    return PageClass::kText;
  }
  return PageClass::kRandom;
}

void ContentModel::set_compressed_bytes(PageClass cls, uint64_t bytes) {
  assert(cls != PageClass::kZero);
  (cls == PageClass::kText ? text_bytes_ : random_bytes_) = bytes;
}

uint64_t ContentModel::WireBytes(PageClass cls) const {
  switch (cls) {
    case PageClass::kZero: return kFramingBytes;
    case PageClass::kText: return text_bytes_ + kFramingBytes;
    case PageClass::kRandom: return random_bytes_ + kFramingBytes;
  }
  return options_.page_size + kFramingBytes;
}

}  // namespace converge::sim
