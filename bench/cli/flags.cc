#include "bench/cli/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace converge::bench {
namespace {

std::string FormatDouble(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

Result<double> ParseDouble(const std::string& text) {
  if (text.empty()) return InvalidArgumentError("empty value");
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(v)) {
    return InvalidArgumentError("'" + text + "' is not a number");
  }
  return v;
}

}  // namespace

void Flags::AddString(std::string name, std::string* value, std::string help,
                      std::vector<std::string> choices) {
  std::string def = *value;
  flags_.push_back({std::move(name), Kind::kString, value, std::move(help),
                    std::move(choices), def});
}

void Flags::AddUint(std::string name, uint64_t* value, std::string help) {
  flags_.push_back({std::move(name), Kind::kUint, value, std::move(help), {},
                    std::to_string(*value)});
}

void Flags::AddDouble(std::string name, double* value, std::string help) {
  flags_.push_back({std::move(name), Kind::kDouble, value, std::move(help),
                    {}, FormatDouble(*value)});
}

void Flags::AddDoubleList(std::string name, std::vector<double>* value,
                          std::string help) {
  std::string def;
  for (double v : *value) def += (def.empty() ? "" : ",") + FormatDouble(v);
  flags_.push_back({std::move(name), Kind::kDoubleList, value,
                    std::move(help), {}, def});
}

void Flags::AddBool(std::string name, bool* value, std::string help) {
  flags_.push_back({std::move(name), Kind::kBool, value, std::move(help), {},
                    *value ? "true" : "false"});
}

Flags::Flag* Flags::Find(const std::string& name) {
  for (Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool Flags::WasSet(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return f.set;
  }
  return false;
}

Status Flags::Assign(Flag& flag, const std::string& text) {
  const std::string where = "--" + flag.name;
  switch (flag.kind) {
    case Kind::kString: {
      if (!flag.choices.empty()) {
        bool found = false;
        std::string list;
        for (const std::string& c : flag.choices) {
          found |= c == text;
          list += (list.empty() ? "" : ", ") + c;
        }
        if (!found) {
          return InvalidArgumentError(where + ": '" + text +
                                      "' is not one of " + list);
        }
      }
      *static_cast<std::string*>(flag.value) = text;
      return OkStatus();
    }
    case Kind::kUint: {
      errno = 0;
      char* end = nullptr;
      unsigned long long v = std::strtoull(text.c_str(), &end, 10);
      if (text.empty() || text[0] == '-' || errno != 0 ||
          end != text.c_str() + text.size()) {
        return InvalidArgumentError(where + " expects a whole number >= 0, got '" +
                                    text + "'");
      }
      *static_cast<uint64_t*>(flag.value) = v;
      return OkStatus();
    }
    case Kind::kDouble: {
      Result<double> v = ParseDouble(text);
      if (!v.ok()) return v.status().WithContext(where);
      if (*v < 0) {
        return InvalidArgumentError(where + " expects a value >= 0, got '" +
                                    text + "'");
      }
      *static_cast<double*>(flag.value) = *v;
      return OkStatus();
    }
    case Kind::kDoubleList: {
      std::vector<double> list;
      std::stringstream in(text);
      std::string item;
      while (std::getline(in, item, ',')) {
        Result<double> v = ParseDouble(item);
        if (!v.ok()) return v.status().WithContext(where);
        if (*v <= 0) {
          return InvalidArgumentError(where + " expects positive values, got '" +
                                      item + "'");
        }
        list.push_back(*v);
      }
      if (list.empty()) {
        return InvalidArgumentError(where + " expects a comma-separated list");
      }
      *static_cast<std::vector<double>*>(flag.value) = std::move(list);
      return OkStatus();
    }
    case Kind::kBool: {
      if (text == "true" || text == "1") {
        *static_cast<bool*>(flag.value) = true;
      } else if (text == "false" || text == "0") {
        *static_cast<bool*>(flag.value) = false;
      } else {
        return InvalidArgumentError(where + " expects true or false, got '" +
                                    text + "'");
      }
      return OkStatus();
    }
  }
  return InternalError("unhandled flag kind");
}

Status Flags::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      return InvalidArgumentError("unexpected argument '" + arg +
                                  "' (flags start with --; see converge-bench " +
                                  command_ + " --help)");
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    Flag* flag = Find(name);
    if (flag == nullptr) {
      return InvalidArgumentError("unknown flag --" + name +
                                  " (see converge-bench " + command_ +
                                  " --help)");
    }
    if (!has_value) {
      if (flag->kind == Kind::kBool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return InvalidArgumentError("--" + name + " needs a value");
      }
    }
    CONVERGE_RETURN_IF_ERROR(Assign(*flag, value));
    flag->set = true;
  }
  return OkStatus();
}

std::string Flags::Usage(const std::string& summary) const {
  std::ostringstream out;
  out << "usage: converge-bench " << command_ << " [flags]\n\n"
      << summary << "\n\nflags:\n";
  for (const Flag& f : flags_) {
    std::string lhs = "  --" + f.name;
    if (f.kind != Kind::kBool) lhs += " VALUE";
    out << lhs;
    if (lhs.size() < 28) out << std::string(28 - lhs.size(), ' ');
    else out << "\n" << std::string(28, ' ');
    out << f.help;
    if (!f.choices.empty()) {
      out << " (";
      for (size_t i = 0; i < f.choices.size(); ++i) {
        out << (i ? "|" : "") << f.choices[i];
      }
      out << ")";
    }
    if (!f.default_text.empty()) out << " [default: " << f.default_text << "]";
    out << "\n";
  }
  out << "  --help                    show this help\n";
  return out.str();
}

}  // namespace converge::bench
