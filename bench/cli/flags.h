// Flags: the command-line parser of converge-bench.
//
// Each command declares its flags (name, help, default); Parse() fills them
// from argv and returns a clear error naming the bad flag or value. --help
// is handled by the caller through Usage().
//
// Thread-safety: none; used on the main thread while starting up.

#ifndef CONVERGE_BENCH_CLI_FLAGS_H_
#define CONVERGE_BENCH_CLI_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace converge::bench {

class Flags {
 public:
  explicit Flags(std::string command) : command_(std::move(command)) {}

  // Declare flags. The pointed-to variable holds the default and receives
  // the parsed value; it must outlive Parse().
  void AddString(std::string name, std::string* value, std::string help,
                 std::vector<std::string> choices = {});
  void AddUint(std::string name, uint64_t* value, std::string help);
  void AddDouble(std::string name, double* value, std::string help);
  // A comma-separated list of positive numbers ("50,100,200").
  void AddDoubleList(std::string name, std::vector<double>* value,
                     std::string help);
  void AddBool(std::string name, bool* value, std::string help);

  // Parses args (without the program and command names). Accepts
  // "--name value" and "--name=value". Sets help_requested() on --help/-h.
  Status Parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_requested_; }
  // True when the flag appeared on the command line.
  bool WasSet(const std::string& name) const;

  // "usage: converge-bench <command> [flags]" and one line per flag with
  // its default.
  std::string Usage(const std::string& summary) const;

 private:
  enum class Kind { kString, kUint, kDouble, kDoubleList, kBool };
  struct Flag {
    std::string name;
    Kind kind;
    void* value;
    std::string help;
    std::vector<std::string> choices;
    std::string default_text;
    bool set = false;
  };
  Flag* Find(const std::string& name);
  Status Assign(Flag& flag, const std::string& text);

  std::string command_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_CLI_FLAGS_H_
