#include "bench/cli/flags.h"

#include <gtest/gtest.h>

namespace converge::bench {
namespace {

struct SweepFlags {
  std::string workload = "hotcold";
  uint64_t ram_gib = 1;
  double link_gbps = 0;
  std::vector<double> downtime_ms = {50, 100};
  bool quiet = false;
  Flags flags{"sweep"};
  SweepFlags() {
    flags.AddString("workload", &workload, "guest workload",
                    {"seq", "random", "hotcold", "idle", "burst"});
    flags.AddUint("ram-gib", &ram_gib, "guest RAM");
    flags.AddDouble("link-gbps", &link_gbps, "bandwidth cap");
    flags.AddDoubleList("downtime-ms", &downtime_ms, "limits");
    flags.AddBool("quiet", &quiet, "no progress");
  }
};

TEST(FlagsTest, ParsesBothSpellingsAndKeepsDefaults) {
  SweepFlags f;
  ASSERT_TRUE(f.flags.Parse({"--workload", "seq", "--link-gbps=2.5",
                             "--downtime-ms", "10,20,30", "--quiet"})
                  .ok());
  EXPECT_EQ(f.workload, "seq");
  EXPECT_EQ(f.ram_gib, 1u);
  EXPECT_DOUBLE_EQ(f.link_gbps, 2.5);
  EXPECT_EQ(f.downtime_ms, (std::vector<double>{10, 20, 30}));
  EXPECT_TRUE(f.quiet);
  EXPECT_TRUE(f.flags.WasSet("workload"));
  EXPECT_FALSE(f.flags.WasSet("ram-gib"));
}

struct BadCase {
  std::vector<std::string> args;
  std::string message_part;
};

TEST(FlagsTest, BadInputNamesTheFlag) {
  const BadCase cases[] = {
      {{"--bogus", "1"}, "unknown flag --bogus"},
      {{"--workload", "heavy"}, "--workload: 'heavy' is not one of seq, random"},
      {{"--ram-gib", "-1"}, "--ram-gib expects a whole number"},
      {{"--ram-gib", "2x"}, "--ram-gib expects a whole number"},
      {{"--link-gbps", "fast"}, "--link-gbps: 'fast' is not a number"},
      {{"--downtime-ms", "10,,20"}, "--downtime-ms: empty value"},
      {{"--downtime-ms", "10,-5"}, "--downtime-ms expects positive values"},
      {{"--ram-gib"}, "--ram-gib needs a value"},
      {{"stray"}, "unexpected argument 'stray'"},
      {{"--quiet=maybe"}, "--quiet expects true or false"},
  };
  for (const BadCase& c : cases) {
    SweepFlags f;
    Status s = f.flags.Parse(c.args);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.message_part;
    EXPECT_NE(s.message().find(c.message_part), std::string::npos)
        << s.message();
  }
}

TEST(FlagsTest, HelpListsFlagsWithDefaults) {
  SweepFlags f;
  ASSERT_TRUE(f.flags.Parse({"--help"}).ok());
  EXPECT_TRUE(f.flags.help_requested());
  std::string usage = f.flags.Usage("Runs one migration per limit.");
  EXPECT_NE(usage.find("usage: converge-bench sweep"), std::string::npos);
  EXPECT_NE(usage.find("--downtime-ms VALUE"), std::string::npos);
  EXPECT_NE(usage.find("[default: 50,100]"), std::string::npos);
  EXPECT_NE(usage.find("(seq|random|hotcold|idle|burst)"), std::string::npos);
}

}  // namespace
}  // namespace converge::bench
