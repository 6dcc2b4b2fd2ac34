#include "io/pipeline_fence.h"

#include <atomic>
#include <cstdint>

namespace converge {
namespace {

// Constant-initialized: no thread ever races on its construction.
std::atomic<uint64_t> fence_count{0};

}  // namespace

void PipelineFence() { fence_count.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace converge

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CONVERGE_THREAD_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CONVERGE_THREAD_SANITIZER 1
#endif

#ifdef CONVERGE_THREAD_SANITIZER
// libtbb is not instrumented, so ThreadSanitizer misses the synchronization
// with which it hands a pipeline's filter objects to its worker threads.
// race_top only matches when the racing access itself is TBB code.
extern "C" const char* __tsan_default_suppressions() {
  return "race_top:tbb::detail::\n";
}
#endif
