// Internals shared by the C API's translation units (converge_c.cc and
// converge_c_engine.cc): the handle structs and the error plumbing. Not
// installed.

#ifndef CONVERGE_ENGINE_CONVERGE_C_INTERNAL_H_
#define CONVERGE_ENGINE_CONVERGE_C_INTERNAL_H_

#include <exception>
#include <memory>
#include <new>
#include <string>

#include "engine/converge.h"
#include "engine/destination.h"
#include "engine/precopy_engine.h"
#include "io/transport.h"

struct converge_kernel {
  converge::Kernel* kernel;
};
struct converge_transport {
  std::unique_ptr<converge::Transport> transport;
};
struct converge_source {
  std::unique_ptr<converge::DirtySource> owned;  // null when borrowed
  converge::DirtySource* source;
};
struct converge_engine {
  std::unique_ptr<converge::PrecopyEngine> engine;
};
struct converge_destination {
  std::unique_ptr<converge::Destination> destination;
};

namespace converge::capi {

// Records status as this thread's last error; returns its code.
converge_status Report(const Status& status);
converge_status NullArgument(const char* what);
Kernel& KernelOf(converge_kernel* kernel);
// Copies s into out[size], truncated and NUL-terminated.
void CopyString(const std::string& s, char* out, size_t size);

// Runs fn, turning an escaping exception into an error code.
template <typename Fn>
converge_status Guard(Fn&& fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Report(ResourceExhaustedError("out of memory"));
  } catch (const std::exception& e) {
    return Report(InternalError(e.what()));
  }
}

}  // namespace converge::capi

#endif  // CONVERGE_ENGINE_CONVERGE_C_INTERNAL_H_
