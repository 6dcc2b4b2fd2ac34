// The C API (engine/converge.h): errors, kernels, transports, sources and
// options. The engine and destination calls are in converge_c_engine.cc.
// Every entry point catches what C++ could throw (allocation failure), so
// nothing unwinds into C.

#include <cstring>
#include <utility>
#include <vector>

#include "engine/converge.h"
#include "engine/converge_c_internal.h"
#include "engine/converge_cpp.h"
#include "io/file_transport.h"
#include "io/socket_transport.h"
#include "vm/kvm_dirty_log_source.h"

namespace converge::capi {
namespace {
thread_local std::string last_error;
}  // namespace

const char* LastError() { return last_error.c_str(); }

converge_status Report(const Status& status) {
  if (status.ok()) return CONVERGE_OK;
  last_error = status.ToString();
  return static_cast<converge_status>(status.code());
}

converge_status NullArgument(const char* what) {
  return Report(InvalidArgumentError(std::string(what) + " is NULL"));
}

Kernel& KernelOf(converge_kernel* k) {
  return k != nullptr ? *k->kernel : Kernel::Default();
}

void CopyString(const std::string& s, char* out, size_t size) {
  const size_t n = std::min(s.size(), size - 1);
  std::memcpy(out, s.data(), n);
  out[n] = '\0';
}

}  // namespace converge::capi

namespace {

using converge::capi::Guard;
using converge::capi::KernelOf;
using converge::capi::NullArgument;
using converge::capi::Report;

converge_status NewTransport(
    converge::Result<std::unique_ptr<converge::FileTransport>> r,
    converge_transport** out) {
  if (!r.ok()) return Report(r.status());
  *out = new converge_transport{std::move(*r)};
  return CONVERGE_OK;
}

}  // namespace

converge_kernel* converge_kernel_wrap(converge::Kernel& kernel) {
  return new (std::nothrow) converge_kernel{&kernel};
}

converge_source* converge_source_wrap(converge::DirtySource* source) {
  return new (std::nothrow) converge_source{nullptr, source};
}

extern "C" {

const char* converge_last_error(void) {
  return converge::capi::LastError();
}

const char* converge_status_name(converge_status status) {
  if (status < CONVERGE_OK || status > CONVERGE_INTERNAL) return "INVALID";
  static const char* const kNames[] = {
      "OK",          "INVALID_ARGUMENT", "OUT_OF_RANGE",
      "NOT_SUPPORTED", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED",
      "UNAVAILABLE", "INTERRUPTED",      "IO_ERROR",
      "CORRUPT",     "CANCELLED",        "INTERNAL"};
  return kNames[status];
}

converge_kernel* converge_kernel_default(void) {
  static converge_kernel k{&converge::Kernel::Default()};
  return &k;
}

void converge_kernel_destroy(converge_kernel* kernel) {
  if (kernel != nullptr && kernel != converge_kernel_default()) delete kernel;
}

converge_status converge_transport_from_socket(int fd,
                                               converge_transport** out) {
  if (out == nullptr) return NullArgument("out");
  return Guard([&] {
    auto r = converge::SocketTransport::FromFd(fd, "socket");
    if (!r.ok()) return Report(r.status());
    *out = new converge_transport{std::move(*r)};
    return CONVERGE_OK;
  });
}

converge_status converge_transport_create_file(const char* path,
                                               converge_transport** out) {
  if (path == nullptr) return NullArgument("path");
  if (out == nullptr) return NullArgument("out");
  return Guard(
      [&] { return NewTransport(converge::FileTransport::Create(path), out); });
}

converge_status converge_transport_open_file(const char* path,
                                             converge_transport** out) {
  if (path == nullptr) return NullArgument("path");
  if (out == nullptr) return NullArgument("out");
  return Guard(
      [&] { return NewTransport(converge::FileTransport::Open(path), out); });
}

converge_status converge_transport_close(converge_transport* t) {
  if (t == nullptr) return CONVERGE_OK;
  converge_status s = Report(t->transport->Close());
  delete t;
  return s;
}

uint64_t converge_transport_bytes_written(const converge_transport* t) {
  return t != nullptr ? t->transport->bytes_written() : 0;
}

converge_status converge_source_kvm_dirty_log(converge_kernel* kernel,
                                              int vm_fd,
                                              const converge_kvm_slot* slots,
                                              size_t num_slots,
                                              int manual_protect,
                                              converge_source** out) {
  if (out == nullptr) return NullArgument("out");
  if (slots == nullptr || num_slots == 0) {
    return Report(converge::InvalidArgumentError("no KVM memslots given"));
  }
  if (vm_fd < 0) {
    return Report(converge::InvalidArgumentError(
        "vm_fd " + std::to_string(vm_fd) + " is not a file descriptor"));
  }
  return Guard([&] {
    std::vector<converge::KvmMemslot> v;
    for (size_t i = 0; i < num_slots; ++i) {
      converge::KvmMemslot m;
      m.slot = slots[i].slot;
      m.gpa = slots[i].gpa;
      m.bytes = slots[i].bytes;
      m.host = slots[i].host;
      m.flags = slots[i].flags;
      v.push_back(m);
    }
    converge::KvmDirtyLogOptions o;
    o.manual_protect = manual_protect != 0;
    auto src = std::make_unique<converge::KvmDirtyLogSource>(
        KernelOf(kernel), vm_fd, std::move(v), o);
    converge::DirtySource* raw = src.get();
    *out = new converge_source{std::move(src), raw};
    return CONVERGE_OK;
  });
}

void converge_source_destroy(converge_source* source) { delete source; }

void converge_engine_options_init(converge_engine_options* c) {
  if (c == nullptr) return;
  const converge::EngineOptions o;
  const converge::PolicyOptions& p = o.policy;
  *c = converge_engine_options{};
  c->policy.downtime_limit_ms = p.downtime_limit_ms;
  c->policy.bandwidth_cap_bps = p.bandwidth_cap_bps;
  c->policy.max_iterations = p.max_iterations;
  c->policy.max_total_time_ms = p.max_total_time_ms;
  c->policy.switchover_ack_required = p.switchover_ack_required;
  c->policy.iteration_budget_bytes = p.iteration_budget_bytes;
  c->policy.iteration_budget_ms = p.iteration_budget_ms;
  c->policy.force_switchover_on_limit =
      p.on_limit == converge::OnLimit::kForceSwitchover;
  c->policy.abort_on_stall = p.on_stall == converge::OnStall::kAbort;
  c->codec = static_cast<converge_codec>(o.codec.codec);
  c->zstd_level = o.codec.zstd_level;
  c->rearm_chunk_bytes = o.rearm_chunk_bytes;
  c->device_precopy = o.device_precopy;
}


}  // extern "C"
