#include "bench/cli/content_calibration.h"

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

namespace converge::bench {
namespace {

constexpr uint64_t kPageBytes = 4096;

// Compressed bytes per page of sample pages filled with one content class.
Result<double> BytesPerPage(const CalibrationOptions& options,
                            double text_fraction) {
  std::vector<uint8_t> sample(options.sample_pages * kPageBytes, 0);
  RamFillOptions fill;
  fill.zero_fraction = 0;
  fill.text_fraction = text_fraction;
  fill.seed = options.seed;
  Result<RamFillCounts> filled = FillGuestRam(sample, 0, fill);
  if (!filled.ok()) return filled.status();
  const uint64_t record_bytes = uint64_t{options.pages_per_record} * kPageBytes;
  uint64_t encoded_total = 0;
  ByteBuffer out;
  for (uint64_t off = 0; off < sample.size(); off += record_bytes) {
    std::span<const uint8_t> record(
        sample.data() + off, std::min<uint64_t>(record_bytes, sample.size() - off));
    CONVERGE_ASSIGN_OR_RETURN(Codec used,
                              EncodeChunk(options.codec, record, out));
    encoded_total += used == Codec::kNone ? record.size() : out.size();
  }
  return static_cast<double>(encoded_total) /
         static_cast<double>(options.sample_pages);
}

}  // namespace

Result<ContentCalibration> CalibrateContent(const CalibrationOptions& options) {
  if (options.sample_pages == 0 || options.pages_per_record == 0) {
    return InvalidArgumentError(
        "content calibration needs sample_pages and pages_per_record > 0");
  }
  ContentCalibration c;
  CONVERGE_ASSIGN_OR_RETURN(c.text_bytes_per_page, BytesPerPage(options, 1.0));
  CONVERGE_ASSIGN_OR_RETURN(c.random_bytes_per_page,
                            BytesPerPage(options, 0.0));
  return c;
}

void ApplyCalibration(const ContentCalibration& calibration,
                      sim::ContentModel& model) {
  model.set_compressed_bytes(
      sim::PageClass::kText,
      static_cast<uint64_t>(std::ceil(calibration.text_bytes_per_page)));
  model.set_compressed_bytes(
      sim::PageClass::kRandom,
      static_cast<uint64_t>(std::ceil(calibration.random_bytes_per_page)));
}

}  // namespace converge::bench
