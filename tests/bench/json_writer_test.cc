#include "bench/cli/json_writer.h"

#include <cmath>

#include <gtest/gtest.h>

namespace converge::bench {
namespace {

TEST(JsonWriterTest, CompactDocument) {
  JsonWriter w(0);
  w.BeginObject()
      .Field("workload", "hotcold")
      .Field("converged", true)
      .Field("iterations", uint64_t{7})
      .Field("predicted_downtime_ms", 12.5)
      .Key("limits").BeginArray().Double(50).Double(100).EndArray()
      .Key("empty").BeginObject().EndObject()
      .Key("nan").Double(std::nan(""))
      .EndObject();
  EXPECT_EQ(w.str(),
            "{\"workload\":\"hotcold\",\"converged\":true,\"iterations\":7,"
            "\"predicted_downtime_ms\":12.5,\"limits\":[50,100],\"empty\":{},"
            "\"nan\":null}");
}

TEST(JsonWriterTest, PrettyPrintsNested) {
  JsonWriter w(2);
  w.BeginArray().BeginObject().Field("a", 1).EndObject().EndArray();
  EXPECT_EQ(w.str(), "[\n  {\n    \"a\": 1\n  }\n]");
}

TEST(JsonWriterTest, EscapesStrings) {
  EXPECT_EQ(JsonQuote("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
}

}  // namespace
}  // namespace converge::bench
