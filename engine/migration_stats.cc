#include "engine/migration_stats.h"

#include <cmath>
#include <cstdio>
#include <string_view>

namespace converge {
namespace {

// Appends "key":value pairs to one JSON object.
class JsonLine {
 public:
  JsonLine() : out_("{") {}

  void Add(std::string_view key, uint64_t v) {
    Key(key);
    out_ += std::to_string(v);
  }
  void Add(std::string_view key, double v) {
    Key(key);
    if (!std::isfinite(v)) {
      out_ += "null";
      return;
    }
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    out_ += buf;
  }
  void Add(std::string_view key, bool v) {
    Key(key);
    out_ += v ? "true" : "false";
  }
  void Add(std::string_view key, std::string_view v) {
    Key(key);
    out_ += '"';
    for (char c : v) {
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        out_ += buf;
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }
  std::string Finish() { return out_ + "}"; }

 private:
  void Key(std::string_view key) {
    if (out_.size() > 1) out_ += ',';
    out_ += '"';
    out_ += key;
    out_ += "\":";
  }
  std::string out_;
};

}  // namespace

std::string IterationStatsJson(const IterationStats& s) {
  JsonLine j;
  j.Add("type", std::string_view("iteration"));
  j.Add("iteration", s.iteration);
  j.Add("start_ns", s.start_ns);
  j.Add("duration_ns", s.duration_ns);
  j.Add("sync_ns", s.sync_ns);
  j.Add("ram_dirtied_pages", s.ram_dirtied_pages);
  j.Add("ram_pages_sent", s.ram_pages_sent);
  j.Add("ram_zero_pages", s.ram_zero_pages);
  j.Add("ram_wire_bytes", s.ram_wire_bytes);
  j.Add("ram_pending_pages", s.ram_pending_pages);
  j.Add("device_bytes", s.device_bytes);
  j.Add("device_wire_bytes", s.device_wire_bytes);
  j.Add("stream_bytes", s.stream_bytes);
  j.Add("budget_exhausted", s.budget_exhausted);
  j.Add("verdict", VerdictName(s.verdict));
  j.Add("predicted_downtime_ms", s.predicted_downtime_ms);
  j.Add("qemu_expected_downtime_ms", s.qemu_expected_downtime_ms);
  j.Add("pending_bytes", s.pending_bytes);
  j.Add("bandwidth_bps", s.bandwidth_bps);
  j.Add("dirty_rate_bps", s.dirty_rate_bps);
  j.Add("lambda", s.lambda);
  return j.Finish();
}

std::string SwitchoverStatsJson(const SwitchoverStats& s) {
  JsonLine j;
  j.Add("type", std::string_view("switchover"));
  j.Add("predicted_downtime_ms", s.predicted_downtime_ms);
  j.Add("qemu_expected_downtime_ms", s.qemu_expected_downtime_ms);
  j.Add("reason", s.reason);
  j.Add("start_ns", s.start_ns);
  j.Add("paused_ns", s.paused_ns);
  j.Add("last_byte_ns", s.last_byte_ns);
  j.Add("p2p_ns", s.p2p_ns);
  j.Add("pause_ns", s.pause_ns);
  j.Add("final_sync_ns", s.final_sync_ns);
  j.Add("device_stop_ns", s.device_stop_ns);
  j.Add("device_drain_ns", s.device_drain_ns);
  j.Add("ram_ns", s.ram_ns);
  j.Add("finish_ns", s.finish_ns);
  j.Add("source_downtime_ns", s.source_downtime_ns);
  j.Add("ram_pages", s.ram_pages);
  j.Add("ram_wire_bytes", s.ram_wire_bytes);
  j.Add("device_bytes", s.device_bytes);
  j.Add("stream_bytes", s.stream_bytes);
  j.Add("iterations", s.iterations);
  j.Add("total_stream_bytes", s.total_stream_bytes);
  j.Add("total_ram_pages", s.total_ram_pages);
  j.Add("total_device_bytes", s.total_device_bytes);
  j.Add("total_time_ns", s.total_time_ns);
  return j.Finish();
}

}  // namespace converge
