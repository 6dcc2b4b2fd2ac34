#include "bench/cli/content_calibration.h"

#include <gtest/gtest.h>

namespace converge::bench {
namespace {

TEST(ContentCalibrationTest, TextShrinksAndRandomDoesNot) {
  CalibrationOptions o;
  o.codec.codec = Codec::kLz4;
  o.sample_pages = 512;
  Result<ContentCalibration> c = CalibrateContent(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_LT(c->text_bytes_per_page, 4096.0 / 1.5);
  EXPECT_GT(c->text_bytes_per_page, 100.0);
  EXPECT_GE(c->random_bytes_per_page, 4096.0 * 0.99);
  EXPECT_LE(c->random_bytes_per_page, 4096.0);  // raw fallback caps it
}

TEST(ContentCalibrationTest, ZstdBeatsLz4OnTextAndNoneIsAPage) {
  CalibrationOptions o;
  o.sample_pages = 512;
  o.codec.codec = Codec::kLz4;
  Result<ContentCalibration> lz4 = CalibrateContent(o);
  o.codec.codec = Codec::kZstd;
  Result<ContentCalibration> zstd = CalibrateContent(o);
  o.codec.codec = Codec::kNone;
  Result<ContentCalibration> none = CalibrateContent(o);
  ASSERT_TRUE(lz4.ok() && zstd.ok() && none.ok());
  EXPECT_LT(zstd->text_bytes_per_page, lz4->text_bytes_per_page);
  EXPECT_DOUBLE_EQ(none->text_bytes_per_page, 4096);
  EXPECT_DOUBLE_EQ(none->random_bytes_per_page, 4096);
}

TEST(ContentCalibrationTest, AppliesRoundedUpSizesToTheModel) {
  sim::ContentModel model{sim::ContentOptions{}};
  ApplyCalibration({1000.2, 4096}, model);
  EXPECT_EQ(model.WireBytes(sim::PageClass::kText),
            1001 + sim::ContentModel::kFramingBytes);
  EXPECT_EQ(model.WireBytes(sim::PageClass::kRandom),
            4096 + sim::ContentModel::kFramingBytes);
}

TEST(ContentCalibrationTest, EmptySamplesAreRefused) {
  CalibrationOptions o;
  o.sample_pages = 0;
  EXPECT_EQ(CalibrateContent(o).status().code(), StatusCode::kInvalidArgument);
  o.sample_pages = 8;
  o.pages_per_record = 0;
  EXPECT_EQ(CalibrateContent(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace converge::bench
