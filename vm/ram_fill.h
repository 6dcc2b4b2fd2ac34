// FillGuestRam: gives fresh guest RAM a realistic content mix, so that
// zero-page elision and compression downstream are measured on data that
// looks like a real guest's: zero pages, text-like pages (words from a small
// vocabulary: lz4 gets 2-3x) and incompressible pages (pseudo-random).
//
// Each page's kind and content depend only on (seed, page number), so two
// fills with the same options are identical.
//
// Thread-safety: a pure function over the caller's memory.

#ifndef CONVERGE_VM_RAM_FILL_H_
#define CONVERGE_VM_RAM_FILL_H_

#include <cstdint>
#include <span>

#include "base/status.h"

namespace converge {

struct RamFillOptions {
  // Fractions of pages of each kind; the rest is incompressible. Zero pages
  // cost nothing (fresh anonymous memory is already zero and stays
  // unallocated); every other page is written, so it is resident: a 3 GiB
  // guest with the defaults holds ~2.3 GiB and takes about a second.
  double zero_fraction = 0.25;
  double text_fraction = 0.5;
  uint64_t seed = 1;
};

struct RamFillCounts {
  uint64_t zero_pages = 0;
  uint64_t text_pages = 0;
  uint64_t random_pages = 0;
};

// Fills the 4 KiB pages of ram, whose first page is guest page first_page.
// Expects ram to be zero already (zero pages are skipped, not written).
// Fails on fractions outside [0, 1] or summing past 1, naming them.
// REQUIRES: ram.size() is a multiple of 4096.
[[nodiscard]] Result<RamFillCounts> FillGuestRam(std::span<uint8_t> ram,
                                                 uint64_t first_page,
                                                 const RamFillOptions& options);

}  // namespace converge

#endif  // CONVERGE_VM_RAM_FILL_H_
