// JsonWriter: a small streaming JSON writer for migration summaries and
// per-iteration records (JSON lines). Keys and strings are escaped; numbers
// that are not finite are written as null.
//
// Thread-safety: none.

#ifndef CONVERGE_BENCH_CLI_JSON_WRITER_H_
#define CONVERGE_BENCH_CLI_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace converge::bench {

class JsonWriter {
 public:
  // indent 0 writes one line (for JSON lines); > 0 pretty-prints.
  explicit JsonWriter(int indent = 2) : indent_(indent) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Inside an object: the next value's key.
  JsonWriter& Key(std::string_view key);

  JsonWriter& String(std::string_view v);
  JsonWriter& Int(int64_t v);
  JsonWriter& Uint(uint64_t v);
  JsonWriter& Double(double v);
  JsonWriter& Bool(bool v);
  JsonWriter& Null();

  // Key + value shorthands.
  JsonWriter& Field(std::string_view key, std::string_view v) {
    return Key(key).String(v);
  }
  JsonWriter& Field(std::string_view key, const char* v) {
    return Key(key).String(v);
  }
  JsonWriter& Field(std::string_view key, double v) { return Key(key).Double(v); }
  JsonWriter& Field(std::string_view key, uint64_t v) { return Key(key).Uint(v); }
  JsonWriter& Field(std::string_view key, int64_t v) { return Key(key).Int(v); }
  JsonWriter& Field(std::string_view key, int v) { return Key(key).Int(v); }
  JsonWriter& Field(std::string_view key, bool v) { return Key(key).Bool(v); }

  // The document so far. REQUIRES: every object and array closed.
  const std::string& str() const { return out_; }

 private:
  void BeforeValue();
  void NewLine();
  void Close(char bracket);

  int indent_;
  std::string out_;
  // Per open container: whether it has a member yet.
  std::vector<bool> has_member_;
  bool after_key_ = false;
};

// Escapes s as a JSON string literal, quotes included.
std::string JsonQuote(std::string_view s);

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_JSON_WRITER_H_
