// CalibrateContent: measures what a page of each content class costs after
// the real codec, by filling sample pages the way the micro-VM fills its
// RAM (vm/ram_fill.h) and compressing them in records of the size the RAM
// sender uses. The model's ContentModel then charges those sizes.
//
// Thread-safety: pure functions.

#ifndef CONVERGE_BENCH_CLI_CONTENT_CALIBRATION_H_
#define CONVERGE_BENCH_CLI_CONTENT_CALIBRATION_H_

#include <cstdint>

#include "base/status.h"
#include "io/codec.h"
#include "sim/link_model.h"
#include "vm/ram_fill.h"

namespace converge::bench {

struct ContentCalibration {
  double text_bytes_per_page = 0;    // compressed, framing excluded
  double random_bytes_per_page = 0;  // incompressible: about a page
};

struct CalibrationOptions {
  CodecOptions codec;
  // Seed of the sample pages (fractions are ignored: each class is filled
  // separately).
  uint64_t seed = 1;
  // Sample size per class; more pages average more records.
  uint64_t sample_pages = 2048;
  uint32_t pages_per_record = 256;  // as RamSenderChannelOptions
};

// Errors: a codec failure, or sample_pages / pages_per_record of zero.
[[nodiscard]] Result<ContentCalibration> CalibrateContent(
    const CalibrationOptions& options);

// Sets the measured sizes in model (rounded up to whole bytes).
void ApplyCalibration(const ContentCalibration& calibration,
                      sim::ContentModel& model);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_CONTENT_CALIBRATION_H_
