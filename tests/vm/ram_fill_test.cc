#include "vm/ram_fill.h"

#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace converge {
namespace {

constexpr uint64_t kPage = 4096;

bool IsZero(const uint8_t* page) {
  for (uint64_t i = 0; i < kPage; ++i) {
    if (page[i] != 0) return false;
  }
  return true;
}

TEST(RamFillTest, FractionsAreHonoredAndDeterministic) {
  const uint64_t pages = 4096;
  std::vector<uint8_t> a(pages * kPage), b(pages * kPage);
  RamFillOptions options;
  options.zero_fraction = 0.3;
  options.text_fraction = 0.5;
  options.seed = 42;
  Result<RamFillCounts> ca = FillGuestRam(a, 16, options);
  Result<RamFillCounts> cb = FillGuestRam(b, 16, options);
  ASSERT_TRUE(ca.ok() && cb.ok());
  EXPECT_EQ(a, b);
  EXPECT_EQ(ca->zero_pages + ca->text_pages + ca->random_pages, pages);
  EXPECT_NEAR(static_cast<double>(ca->zero_pages) / pages, 0.3, 0.05);
  EXPECT_NEAR(static_cast<double>(ca->text_pages) / pages, 0.5, 0.05);
  uint64_t zero = 0;
  for (uint64_t p = 0; p < pages; ++p) zero += IsZero(&a[p * kPage]);
  EXPECT_EQ(zero, ca->zero_pages);
}

TEST(RamFillTest, TextPagesArePrintable) {
  std::vector<uint8_t> ram(64 * kPage);
  RamFillOptions options;
  options.zero_fraction = 0;
  options.text_fraction = 1;
  ASSERT_TRUE(FillGuestRam(ram, 0, options).ok());
  for (uint8_t c : ram) {
    ASSERT_TRUE(c == ' ' || c == '\n' || (c >= 'a' && c <= 'z')) << int{c};
  }
}

TEST(RamFillTest, SeedChangesContent) {
  std::vector<uint8_t> a(64 * kPage), b(64 * kPage);
  RamFillOptions options;
  options.zero_fraction = 0;
  ASSERT_TRUE(FillGuestRam(a, 0, options).ok());
  options.seed = 2;
  ASSERT_TRUE(FillGuestRam(b, 0, options).ok());
  EXPECT_NE(a, b);
}

TEST(RamFillTest, RejectsBadFractions) {
  struct Case {
    double zero, text;
  };
  for (Case c : {Case{-0.1, 0.5}, Case{0.5, 1.1}, Case{0.6, 0.6},
                 Case{std::numeric_limits<double>::quiet_NaN(), 0.1}}) {
    std::vector<uint8_t> ram(kPage);
    RamFillOptions options;
    options.zero_fraction = c.zero;
    options.text_fraction = c.text;
    Result<RamFillCounts> r = FillGuestRam(ram, 0, options);
    ASSERT_FALSE(r.ok()) << c.zero << " " << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("zero_fraction"), std::string::npos);
  }
}

}  // namespace
}  // namespace converge
