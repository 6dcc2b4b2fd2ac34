#include "bench/cli/migration_config.h"

#include <gtest/gtest.h>

namespace converge::bench {
namespace {

TEST(MigrationConfigTest, DefaultsAreValidForTheDemo) {
  MigrationConfig c;
  EXPECT_TRUE(ValidateConfig(c, true).ok());
  EXPECT_EQ(RamBytes(c), uint64_t{1} << 30);
  // The model needs a link.
  EXPECT_EQ(ValidateConfig(c, false).code(), StatusCode::kInvalidArgument);
}

struct BadConfig {
  const char* what;
  void (*mutate)(MigrationConfig&);
  bool real_vm;
  const char* message_part;
};

TEST(MigrationConfigTest, BadValuesNameTheFlag) {
  const BadConfig cases[] = {
      {"tiny RAM", [](MigrationConfig& c) { c.ram_gib = 0.00001; }, true,
       "--ram-gib"},
      {"VM over 4 GiB", [](MigrationConfig& c) { c.ram_gib = 8; }, true,
       "at most 4 GiB"},
      {"too many devices", [](MigrationConfig& c) { c.devices = 1000; }, true,
       "--devices 1000"},
      {"stateless devices", [](MigrationConfig& c) { c.device_state_mib = 0; },
       true, "--device-state-mib"},
      {"zero limit", [](MigrationConfig& c) { c.downtime_limit_ms = 0; },
       true, "--downtime-ms"},
      {"model without link", [](MigrationConfig& c) { c.link_gbps = 0; },
       false, "--link-gbps"},
      {"bad codec", [](MigrationConfig& c) { c.codec = "gzip"; }, true,
       "--codec: 'gzip'"},
      {"no time", [](MigrationConfig& c) { c.max_time_s = 0; }, true,
       "--max-time-s"},
  };
  for (const BadConfig& bad : cases) {
    MigrationConfig c;
    c.link_gbps = 10;
    bad.mutate(c);
    Status s = ValidateConfig(c, bad.real_vm);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad.what;
    EXPECT_NE(s.message().find(bad.message_part), std::string::npos)
        << bad.what << ": " << s.message();
  }
}

TEST(MigrationConfigTest, ModelAcceptsHugeGuests) {
  MigrationConfig c;
  c.ram_gib = 1024;
  c.link_gbps = 25;
  EXPECT_TRUE(ValidateConfig(c, false).ok());
  EXPECT_EQ(RamBytes(c), uint64_t{1} << 40);
  EXPECT_DOUBLE_EQ(LinkBps(c), 25e9 / 8);
}

TEST(MigrationConfigTest, PolicyCarriesLimitCapAndForcedSwitchover) {
  MigrationConfig c;
  c.downtime_limit_ms = 120;
  c.link_gbps = 8;
  c.max_iterations = 9;
  c.max_time_s = 2.5;
  PolicyOptions p = MakePolicy(c);
  EXPECT_EQ(p.downtime_limit_ms, 120);
  EXPECT_DOUBLE_EQ(p.bandwidth_cap_bps, 1e9);
  EXPECT_EQ(p.max_iterations, 9u);
  EXPECT_EQ(p.max_total_time_ms, 2500u);
  EXPECT_EQ(p.on_limit, OnLimit::kForceSwitchover);
  EXPECT_TRUE(MigrationPolicy::Validate(p).ok());
}

TEST(MigrationConfigTest, ParseCodecKnowsTheThree) {
  EXPECT_EQ(*ParseCodec("none"), Codec::kNone);
  EXPECT_EQ(*ParseCodec("lz4"), Codec::kLz4);
  EXPECT_EQ(*ParseCodec("zstd"), Codec::kZstd);
  EXPECT_FALSE(ParseCodec("LZ4").ok());
}

}  // namespace
}  // namespace converge::bench
