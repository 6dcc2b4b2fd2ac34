#include "bench/cli/commands.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/cli/vm_migration.h"

namespace converge::bench {
namespace {

// Runs converge-bench with stdout and stderr captured.
struct BenchRun {
  int code = -1;
  std::string out;
  std::string err;
};

BenchRun RunBench(const std::vector<std::string>& args) {
  BenchRun r;
  char* out_buf = nullptr;
  char* err_buf = nullptr;
  size_t out_len = 0, err_len = 0;
  FILE* out = open_memstream(&out_buf, &out_len);
  FILE* err = open_memstream(&err_buf, &err_len);
  r.code = RunConvergeBench(args, out, err);
  fclose(out);
  fclose(err);
  r.out.assign(out_buf, out_len);
  r.err.assign(err_buf, err_len);
  free(out_buf);
  free(err_buf);
  return r;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(CommandsTest, NoCommandOrAnUnknownOneIsUsage) {
  BenchRun none = RunBench({});
  EXPECT_EQ(none.code, kExitUsage);
  EXPECT_TRUE(Contains(none.err, "usage: converge-bench <command>"));
  BenchRun bad = RunBench({"migrate"});
  EXPECT_EQ(bad.code, kExitUsage);
  EXPECT_TRUE(Contains(bad.err, "unknown command 'migrate'")) << bad.err;
  BenchRun help = RunBench({"--help"});
  EXPECT_EQ(help.code, kExitOk);
  EXPECT_TRUE(Contains(help.out, "sweep"));
}

TEST(CommandsTest, EveryCommandHasHelpWithTheContractFlags) {
  for (const char* command : {"demo", "sweep", "model"}) {
    BenchRun r = RunBench({command, "--help"});
    EXPECT_EQ(r.code, kExitOk) << command;
    for (const char* flag :
         {"--workload", "--ram-gib", "--devices", "--device-state-mib",
          "--link-gbps", "--codec", "--downtime-ms", "--json", "--help"}) {
      EXPECT_TRUE(Contains(r.out, std::string(flag) + " "))
          << command << " lacks " << flag;
    }
  }
  EXPECT_TRUE(Contains(RunBench({"sweep", "--help"}).out, "--csv"));
  EXPECT_TRUE(Contains(RunBench({"sweep", "--help"}).out,
                       "[default: 50,100,200,300,500,1000]"));
}

struct BadUsage {
  std::vector<std::string> args;
  std::string message_part;
};

TEST(CommandsTest, BadFlagsExitTwoNamingTheFlag) {
  const BadUsage cases[] = {
      {{"demo", "--workload", "heavy"}, "--workload: 'heavy' is not one of"},
      {{"demo", "--bogus"}, "unknown flag --bogus"},
      {{"demo", "--ram-gib", "8"}, "at most 4 GiB"},
      {{"demo", "--codec", "gzip"}, "--codec: 'gzip' is not one of"},
      {{"demo", "--downtime-ms", "fast"}, "--downtime-ms: 'fast'"},
      {{"sweep", "--downtime-ms", "10,-5"}, "--downtime-ms expects positive"},
      {{"sweep", "--devices", "two"}, "--devices expects a whole number"},
      {{"model", "--link-gbps", "0"}, "--link-gbps must be > 0"},
      {{"model", "--ram-gib"}, "--ram-gib needs a value"},
  };
  for (const BadUsage& c : cases) {
    BenchRun r = RunBench(c.args);
    EXPECT_EQ(r.code, kExitUsage) << c.message_part;
    EXPECT_TRUE(Contains(r.err, c.message_part)) << r.err;
    EXPECT_TRUE(Contains(r.err, "--help")) << r.err;
  }
}

TEST(CommandsTest, ModelRunWritesTheSummaryAndPlot) {
  const std::string json = testing::TempDir() + "/model.json";
  const std::string svg = testing::TempDir() + "/model.svg";
  BenchRun r = RunBench({"model", "--ram-gib", "2", "--link-gbps", "10",
                    "--devices", "1", "--device-state-mib", "8", "--json",
                    json, "--svg", svg});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_TRUE(Contains(r.out, "converge-bench model: hotcold guest"));
  EXPECT_TRUE(Contains(r.err, "iter 1 "));  // progress lines
  std::string doc = ReadFile(json);
  for (const char* key :
       {"\"workload\": \"hotcold\"", "\"downtime_limit_ms\": 300",
        "\"predicted_downtime_ms\"", "\"measured_downtime_ms\"",
        "\"total_time_ms\"", "\"ram_bytes\": 2147483648", "\"bytes_sent\"",
        "\"device_bytes\"", "\"iterations\"", "\"converged\"",
        "\"verified\": null", "\"virtual_time\": true", "\"per_iteration\""}) {
    EXPECT_TRUE(Contains(doc, key)) << key;
  }
  EXPECT_EQ(ReadFile(svg).rfind("<svg", 0), 0u);
}

TEST(CommandsTest, MissingKvmIsNamedWithTheWayOut) {
  Status s = CheckKvmAvailable("/nonexistent/kvm");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), "need /nonexistent/kvm")) << s.message();
  EXPECT_TRUE(Contains(s.message(), "`converge-bench model` runs without it"));
}

TEST(CommandsTest, SmallDemoVerifiesByContent) {
  if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/kvm";
  const std::string json = testing::TempDir() + "/demo.json";
  BenchRun r = RunBench({"demo", "--ram-gib", "0.125", "--devices", "1",
                    "--device-state-mib", "4", "--json", json});
  ASSERT_EQ(r.code, kExitOk) << r.err << r.out;
  std::string doc = ReadFile(json);
  EXPECT_TRUE(Contains(doc, "\"verified\": true")) << doc;
  EXPECT_TRUE(Contains(doc, "\"ram_bytes\": 134217728"));
  EXPECT_TRUE(Contains(r.out, "verified:            yes"));
}

TEST(CommandsTest, SweepWritesOneRowPerLimit) {
  if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/kvm";
  const std::string dir = testing::TempDir();
  BenchRun r = RunBench({"sweep", "--ram-gib", "0.0625", "--devices", "1",
                    "--device-state-mib", "2", "--downtime-ms", "100,400",
                    "--quiet", "--csv", dir + "/s.csv", "--svg",
                    dir + "/s.svg", "--json", dir + "/s.json"});
  ASSERT_EQ(r.code, kExitOk) << r.err << r.out;
  std::string csv = ReadFile(dir + "/s.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  std::string doc = ReadFile(dir + "/s.json");
  EXPECT_EQ(doc.front(), '[');
  EXPECT_TRUE(Contains(doc, "\"downtime_limit_ms\": 400"));
  EXPECT_EQ(ReadFile(dir + "/s.svg").rfind("<svg", 0), 0u);
}

}  // namespace
}  // namespace converge::bench
